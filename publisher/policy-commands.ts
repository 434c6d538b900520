import { createReadStream, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { intOpt, listOpt, positional, requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { TenderError } from '../shared/errors.js';
import { ensureDir, writeFileAtomic } from '../shared/fs-atomic.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { generateSealKey, openStream } from '../shared/trust/sealed-box.js';
import { checkPolicyDocument, parsePolicyFile, type PolicyDocument } from '../shared/protocol/backup-policy.js';
import { MEDIA } from '../shared/protocol/http.js';
import { backupDownload, isSealedDownload, openSealedDownload } from './backup-shore.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../shared/ops-client.js';

/**
 * Backup policies on the ops machine: sign one with a release key (policies run commands on board, so
 * they are signed like releases and the hub never holds the key), make the shore key backups are sealed
 * to, and open a sealed backup ashore.
 */
export class PolicyFileError extends TenderError {}

const SIGN_OPTIONS = {
  key: { type: 'string' as const, description: 'release signing key file (never leaves this machine)' },
  sequence: {
    type: 'string' as const,
    description: 'policy counter; a vessel installs only a higher one per policy name',
    default: 'the current UNIX time in seconds',
  },
  out: { type: 'string' as const, description: 'write the signed policy here' },
};

function signPolicy(
  ctx: Parameters<Command['run']>[0],
  targets: string[] = [],
  retired = false,
): { policy: PolicyDocument; bytes: Buffer } {
  const file = positional(ctx, 0, 'FILE');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyFileError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const key = loadPrivateKey(requiredOpt(ctx, 'key'));
  // Seconds only go up on one signer's clock: a sequence that needs no hub to hand it out.
  const sequence = intOpt(ctx, 'sequence', Math.floor(Date.now() / 1000), 1, 2 ** 40);
  const parsed = parsePolicyFile(text, file, { sequence });
  // --target names who it is for; signed into the policy, so neither the hub nor a vessel can widen it.
  const targeted = targets.length ? checkPolicyDocument({ ...parsed, targets }, '--target') : parsed;
  const policy = retired ? checkPolicyDocument({ ...targeted, retired: true }, file) : targeted;
  return { policy, bytes: envelopeBytes(signEnvelope('policy', policy, [key])) };
}

type Signed = { name: string; sequence: number; target: string; method: string; schedule: string; out: string };
const signedView = (p: PolicyDocument, out: string): Signed => ({
  name: p.name,
  sequence: p.sequence,
  target: `${p.target.app}/${p.target.service}`,
  method: p.method.type,
  schedule: p.schedule,
  out,
});

export const policySign: Command = {
  path: ['policy', 'sign'],
  args: 'FILE',
  summary: 'check a backup policy file (YAML or JSON) and sign it with a release key',
  options: { ...SIGN_OPTIONS, out: { ...SIGN_OPTIONS.out, description: 'the signed policy file to write' } },
  async run(ctx) {
    const out = requiredOpt(ctx, 'out');
    const { policy, bytes } = signPolicy(ctx);
    writeFileAtomic(out, bytes, 0o644);
    return signedView(policy, out);
  },
  human: (r: Signed) =>
    `signed policy ${r.name} #${r.sequence}: ${r.method} backup of ${r.target} at ` +
    `"${r.schedule}" (UTC); written to ${r.out}`,
};

export const policyPublish: Command = {
  path: ['policy', 'publish'],
  args: 'FILE',
  summary: 'sign a backup policy with a release key and publish it to the hub for the vessels it targets',
  details: `The policy is signed here (the key never leaves this machine) with --target as its signed targets
(default: the file's targets, else all); the hub stores the envelope and delivers it in the desired state of
every vessel it names. A newer --sequence replaces it; published to other targets, vessels it no longer names
remove it. --out also writes the signed file (for \`tender policy install\` on a vessel with no link).`,
  options: {
    ...SIGN_OPTIONS,
    target: {
      type: 'string' as const,
      multiple: true,
      description: 'all, group:G or vessel:NAME',
    },
    out: { type: 'string' as const, description: 'also write the signed policy here' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    const target = resolveHubTarget(ctx);
    const { policy, bytes } = signPolicy(ctx, listOpt(ctx, 'target'));
    const out = stringOpt(ctx, 'out');
    if (out) writeFileAtomic(out, bytes, 0o644);
    const r = await opsCall(target, ROUTES.publishPolicy, paths.policies(), undefined, {
      raw: bytes,
      contentType: MEDIA.envelope,
    });
    return { ...signedView(policy, out ?? ''), targets: r.targets, created: r.created, hub: target.hub };
  },
  human: (r: Signed & { targets: string[]; created: boolean; hub: string }) =>
    `${r.created ? 'published' : 'already published:'} policy ${r.name} #${r.sequence} (${r.method} backup of ` +
    `${r.target} at "${r.schedule}" UTC) for ${r.targets.join(', ')} on ${r.hub}` +
    (r.out ? `; signed file also written to ${r.out}` : ''),
};

export const policyRetire: Command = {
  path: ['policy', 'retire'],
  args: 'FILE',
  summary: 'retire a backup policy fleet-wide: a signed retirement that every vessel holding it obeys',
  details: `FILE is the policy as published (its name and targets are what matter). The retirement is signed here
with a newer --sequence and published to the hub, which delivers it to the same targets: a vessel holding the
policy removes it (its backups on board stay, \`tender backup list\` still shows them) and never installs that
policy again at or below this sequence, so an older signed copy replayed later is refused. Publish the policy
again with a higher --sequence to bring it back.`,
  options: {
    ...SIGN_OPTIONS,
    target: { type: 'string' as const, multiple: true, description: 'all, group:G or vessel:NAME' },
    out: { type: 'string' as const, description: 'also write the signed retirement here' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    const target = resolveHubTarget(ctx);
    const { policy, bytes } = signPolicy(ctx, listOpt(ctx, 'target'), true);
    const out = stringOpt(ctx, 'out');
    if (out) writeFileAtomic(out, bytes, 0o644);
    const r = await opsCall(target, ROUTES.publishPolicy, paths.policies(), undefined, {
      raw: bytes,
      contentType: MEDIA.envelope,
    });
    return { name: policy.name, sequence: policy.sequence, targets: r.targets, created: r.created, hub: target.hub };
  },
  human: (r: { name: string; sequence: number; targets: string[]; created: boolean; hub: string }) =>
    `${r.created ? 'retired' : 'already retired:'} policy ${r.name} at #${r.sequence} for ${r.targets.join(', ')} ` +
    `on ${r.hub}; vessels remove it at their next contact`,
};

export const policyKeygen: Command = {
  path: ['policy', 'keygen'],
  summary: 'make the shore key pair backups are sealed to (X25519); the private key stays ashore',
  options: { out: { type: 'string', description: 'directory for seal.key and seal.pub.json' } },
  async run(ctx) {
    const dir = requiredOpt(ctx, 'out');
    ensureDir(dir);
    const k = generateSealKey();
    writeFileAtomic(join(dir, 'seal.key'), k.privatePem, 0o600);
    const pub = { key: k.publicBase64, keyId: k.keyId };
    writeFileAtomic(join(dir, 'seal.pub.json'), `${JSON.stringify(pub, null, 2)}\n`, 0o644);
    return { dir, ...pub };
  },
  human: (r: { dir: string; key: string; keyId: string }) =>
    `seal key ${r.keyId} written to ${r.dir}; put this in a policy to seal its backups:\n` +
    `encryptTo: { key: "${r.key}", keyId: "${r.keyId}" }`,
};

export const backupOpen: Command = {
  path: ['backup', 'open'],
  args: 'FILE',
  summary: 'ashore: open a sealed backup with the shore seal key (refuses one altered or truncated)',
  details: `FILE is either a sealed \`tender backup export\` (opened to the backup as compressed on board) or a
sealed \`tender backup download\` from the hub (opened to the dump itself, each chunk and the whole checked).`,
  options: {
    key: { type: 'string', description: 'the seal.key from `tender policy keygen`' },
    out: { type: 'string', description: 'where to write the opened backup' },
  },
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    const out = requiredOpt(ctx, 'out');
    const pem = readFileSync(requiredOpt(ctx, 'key'), 'utf8');
    if (await isSealedDownload(file)) {
      await openSealedDownload(file, pem, out);
      return { file, out };
    }
    try {
      await pipeline(createReadStream(file), openStream(pem), createWriteStream(out, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      // Nothing half-opened is left behind to be mistaken for a backup.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(out, { force: true });
      throw err;
    }
    return { file, out };
  },
  human: (r: { file: string; out: string }) => `opened ${r.file} into ${r.out}`,
};

export const POLICY_COMMANDS = [policySign, policyPublish, policyRetire, policyKeygen, backupOpen, backupDownload];
