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
export function postEnrolment(hub: string, token: string, key: PrivateKey) {
  return enrol(
    hub,
    {
      token: token.trim(),
      publicKey: key.publicRaw.toString('base64'),
      hostname: hostname().slice(0, 253),
      agentVersion: AGENT_VERSION,
    },
    ENROL_TIMEOUT_MS,
  );
}

export async function enrolOnline(opts: {
  hub: string;
  token: string;
  configPath: string;
  dataDir: string;
  force?: boolean;
  console?: AgentConfig['console'];
}): Promise<AgentConfig> {
  refuseIfEnrolled(opts.configPath, opts.force ?? false);
  if (!parseEnrolmentToken(opts.token))
    throw new EnrolError('enrolment token is malformed (expected tne_<secret>.<version>.<digest>)');
  const hub = opts.hub.replace(/\/+$/, '');
  const key = makeVesselKey(opts.dataDir);
  const res = await postEnrolment(hub, opts.token, key);
  const rootBytes = Buffer.from(res.root, 'base64');
  checkPinnedRoot(opts.token, rootBytes);
  const paths = vesselPaths(opts.dataDir);
  writeFileAtomic(paths.root, rootBytes, 0o644);
  const config = agentConfigSchema.parse({
    version: 1,
    hub,
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
}): AgentConfig {
  refuseIfEnrolled(opts.configPath, opts.force ?? false);
  const file = typeof opts.file === 'string' ? readEnrolmentFile(opts.file) : opts.file;
  const rootBytes = Buffer.from(file.root, 'base64');
  makeVesselKey(opts.dataDir);
  writeFileAtomic(vesselPaths(opts.dataDir).root, rootBytes, 0o644);
  const config = agentConfigSchema.parse({
    version: 1,
    hub: file.hub,
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

/** First contact after an offline enrolment: claim the token with our key and record our id. */
export async function completePendingEnrolment(config: AgentConfig, configPath: string): Promise<AgentConfig> {
  if (!config.pendingToken) return config;
  const key = loadPrivateKey(vesselPaths(config.dataDir).key);
  const res = await postEnrolment(config.hub, config.pendingToken, key);
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
