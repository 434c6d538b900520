import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { TenderError } from '../shared/errors.js';
import { ensureDir, writeFileAtomic } from '../shared/fs-atomic.js';
import { generateKey, loadPrivateKey, type PrivateKey } from '../shared/trust/keys.js';
import { verifyInitialRoot, type TrustedRoot } from '../shared/trust/root.js';
import { parseEnrolmentToken, rootPinOf } from '../shared/protocol/enrolment-token.js';
import { enrolmentFileSchema, type EnrolmentFile } from '../shared/protocol/enrolment-file.js';
import { loadJsonConfig } from '../shared/config-file.js';
import { agentConfigSchema, vesselPaths, writeAgentConfig, type AgentConfig } from './config.js';
import { enrol } from './hub-client.js';
import { hubFetchFor } from './hub-link.js';
import { createHubFetch, probeHubChain, type HubFetch } from '../shared/tls/hub-fetch.js';
import { anchorOf, fingerprintOf, parseCertificates, showFingerprint, toPem } from '../shared/tls/certs.js';
import { AGENT_VERSION } from './version.js';

export class EnrolError extends TenderError {}

// Enrolment happens once, often over a slow link in port; give it time.
const ENROL_TIMEOUT_MS = 60_000;

function refuseIfEnrolled(configPath: string, force: boolean): void {
  if (!force && existsSync(configPath)) {
    throw new EnrolError(
      `${configPath} already exists: this vessel is enrolled (pass --force to enrol again with a new key)`,
    );
  }
}

/** The vessel's own key pair, made once and kept (0600) under the data dir. */
function makeVesselKey(dataDir: string): PrivateKey {
  ensureDir(dataDir);
  const { privatePem } = generateKey();
  const path = vesselPaths(dataDir).key;
  writeFileAtomic(path, privatePem, 0o600);
  return loadPrivateKey(path);
}

/** The root an enrolment token pins: the exact bytes, verified on their own signatures. */
function checkPinnedRoot(token: string, rootBytes: Buffer): TrustedRoot {
  const t = parseEnrolmentToken(token);
  if (!t) throw new EnrolError('enrolment token is malformed (expected tne_<secret>.<version>.<digest>)');
  if (rootPinOf(rootBytes) !== t.rootPin)
    throw new EnrolError('the root document does not match the one the enrolment token pins; refusing to trust it');
  const root = verifyInitialRoot(rootBytes);
  if (root.version !== t.rootVersion)
    throw new EnrolError(`the token pins root v${t.rootVersion}, got v${root.version}`);
  return root;
}

/** POST the enrolment: claims the one-time token and registers our public key. */
export function postEnrolment(hub: string, token: string, key: PrivateKey, fetcher: HubFetch) {
  return enrol(
    hub,
    {
      token: token.trim(),
      publicKey: key.publicRaw.toString('base64'),
      hostname: hostname().slice(0, 253),
      agentVersion: AGENT_VERSION,
    },
    ENROL_TIMEOUT_MS,
    fetcher,
  );
}

/** How this vessel will trust the hub's link: decided from the token and the hub's scheme before a secret is sent. */
interface LinkTrust {
  hubTrust: NonNullable<AgentConfig['hubTrust']>;
  /** The certificate pinned, as PEM (written to hub-ca.pem). */
  caPem?: string;
}

function plainTrust(hub: string, insecureHttp: boolean, where: string): LinkTrust {
  if (hub.startsWith('https://')) return { hubTrust: 'system' };
  if (!insecureHttp)
    throw new EnrolError(
      `the hub ${hub} is plain http:// and ${where} pins no TLS certificate: everything would cross the link in clear; ` +
        'enrol against an https:// hub, or pass --insecure-http to accept that',
    );
  return { hubTrust: 'insecure-http' };
}

/** A pinned certificate is usable only if it signed itself (the anchor of a chain) and matches the pin. */
function checkPinnedCa(pem: string, pin: string, what: string): string {
  const cert = parseCertificates(pem, what)[0]!;
  if (fingerprintOf(cert) !== pin)
    throw new EnrolError(`${what} is ${showFingerprint(fingerprintOf(cert))}, the token pins ${showFingerprint(pin)}`);
  if (!anchorOf([cert]))
    throw new EnrolError(`${what} is not self-signed: only a CA (or a self-signed hub certificate) can be pinned`);
  return toPem(cert);
}

/** Online: the pinned certificate is looked for in the chain the hub presents (nothing is sent but a ClientHello). */
async function onlineTrust(hub: string, pin: string | undefined, insecureHttp: boolean): Promise<LinkTrust> {
  if (!pin) return plainTrust(hub, insecureHttp, 'the enrolment token');
  if (!hub.startsWith('https://'))
    throw new EnrolError(
      `the enrolment token pins a TLS certificate but --hub ${hub} is not https://; refusing to send it in clear`,
    );
  const chain = await probeHubChain(hub);
  const found = chain.find((c) => fingerprintOf(c) === pin);
  if (!found)
    throw new EnrolError(
      `the hub at ${hub} presented no certificate matching the token's pin ${showFingerprint(pin)}; ` +
        'refusing to enrol (a man in the middle, or the wrong hub)',
    );
  return { hubTrust: 'pinned', caPem: checkPinnedCa(found.toString(), pin, 'the pinned certificate') };
}

function fetchFor(trust: LinkTrust): HubFetch {
  return createHubFetch({ ca: trust.caPem ? [trust.caPem] : undefined, allowHttp: trust.hubTrust === 'insecure-http' });
}

function writeTrust(dataDir: string, trust: LinkTrust): void {
  if (trust.caPem) writeFileAtomic(vesselPaths(dataDir).hubCa, trust.caPem, 0o644);
}

export async function enrolOnline(opts: {
  hub: string;
  token: string;
  configPath: string;
  dataDir: string;
  force?: boolean;
  console?: AgentConfig['console'];
  /** Accept an http:// hub whose token pins no certificate: the link in clear. */
  insecureHttp?: boolean;
}): Promise<AgentConfig> {
  refuseIfEnrolled(opts.configPath, opts.force ?? false);
  const token = parseEnrolmentToken(opts.token);
  if (!token) throw new EnrolError('enrolment token is malformed (expected tne_<secret>.<version>.<digest>)');
  const hub = opts.hub.replace(/\/+$/, '');
  const trust = await onlineTrust(hub, token.tlsPin, opts.insecureHttp ?? false);
  const key = makeVesselKey(opts.dataDir);
  const res = await postEnrolment(hub, opts.token, key, fetchFor(trust));
  const rootBytes = Buffer.from(res.root, 'base64');
  checkPinnedRoot(opts.token, rootBytes);
  const paths = vesselPaths(opts.dataDir);
  writeFileAtomic(paths.root, rootBytes, 0o644);
  writeTrust(opts.dataDir, trust);
  const config = agentConfigSchema.parse({
    version: 1,
    hub,
    hubTrust: trust.hubTrust,
    vesselName: res.name,
    vesselId: res.vesselId,
    dataDir: opts.dataDir,
    console: opts.console,
  });
  ensureDir(dirname(opts.configPath), 0o755);
  // The config is written last: its presence means "enrolled", so a cut before here leaves nothing half-done.
  writeAgentConfig(opts.configPath, config);
  return config;
}

/** An offline enrolment file, checked as enrolment checks it (the root its token pins), writing nothing. */
export function readEnrolmentFile(path: string): EnrolmentFile {
  const file = loadJsonConfig(path, enrolmentFileSchema);
  checkPinnedRoot(file.token, Buffer.from(file.root, 'base64'));
  return file;
}

export function enrolFromFile(opts: {
  /** The file's path, or its contents already read (and checked) by readEnrolmentFile. */
  file: string | EnrolmentFile;
  configPath: string;
  dataDir: string;
  force?: boolean;
  console?: AgentConfig['console'];
  insecureHttp?: boolean;
}): AgentConfig {
  refuseIfEnrolled(opts.configPath, opts.force ?? false);
  const file = typeof opts.file === 'string' ? readEnrolmentFile(opts.file) : opts.file;
  const trust = fileTrust(file, opts.insecureHttp ?? false);
  const rootBytes = Buffer.from(file.root, 'base64');
  makeVesselKey(opts.dataDir);
  writeFileAtomic(vesselPaths(opts.dataDir).root, rootBytes, 0o644);
  writeTrust(opts.dataDir, trust);
  const config = agentConfigSchema.parse({
    version: 1,
    hub: file.hub,
    hubTrust: trust.hubTrust,
    vesselName: file.vessel,
    vesselId: null,
    dataDir: opts.dataDir,
    pendingToken: file.token,
    console: opts.console,
  });
  ensureDir(dirname(opts.configPath), 0o755);
  writeAgentConfig(opts.configPath, config);
  return config;
}

/** Offline: the file carries the certificate its token pins. */
function fileTrust(file: EnrolmentFile, insecureHttp: boolean): LinkTrust {
  const pin = parseEnrolmentToken(file.token)?.tlsPin;
  if (!pin) {
    if (file.hubCa) throw new EnrolError('the enrolment file carries a hub CA but its token pins none');
    return plainTrust(file.hub, insecureHttp, 'the enrolment file');
  }
  if (!file.hub.startsWith('https://'))
    throw new EnrolError(`the enrolment file pins a TLS certificate but its hub ${file.hub} is not https://`);
  if (!file.hubCa) throw new EnrolError("the enrolment file's token pins a TLS certificate the file does not carry");
  return { hubTrust: 'pinned', caPem: checkPinnedCa(file.hubCa, pin, "the enrolment file's hub CA") };
}

/** First contact after an offline enrolment: claim the token with our key and record our id. */
export async function completePendingEnrolment(config: AgentConfig, configPath: string): Promise<AgentConfig> {
  if (!config.pendingToken) return config;
  const key = loadPrivateKey(vesselPaths(config.dataDir).key);
  const res = await postEnrolment(config.hub, config.pendingToken, key, hubFetchFor(config));
  if (res.name !== config.vesselName)
    throw new EnrolError(`the hub enrolled us as ${res.name}, the file said ${config.vesselName}`);
  const next: AgentConfig = { ...config, vesselId: res.vesselId };
  delete next.pendingToken;
  writeAgentConfig(configPath, next);
  return next;
}

export function loadTrustedRoot(dataDir: string): TrustedRoot {
  return verifyInitialRoot(readFileSync(vesselPaths(dataDir).root));
}
