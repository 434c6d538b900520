import { createReadStream, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { intOpt, positional, requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { TenderError } from '../shared/errors.js';
import { ensureDir, writeFileAtomic } from '../shared/fs-atomic.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { generateSealKey, openStream } from '../shared/trust/sealed-box.js';
import { parsePolicyFile, type PolicyDocument } from '../shared/protocol/backup-policy.js';

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

function signPolicy(ctx: Parameters<Command['run']>[0]): { policy: PolicyDocument; bytes: Buffer } {
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
  const policy = parsePolicyFile(text, file, { sequence });
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
    `signed policy ${r.name} #${r.sequence}: ${r.method} backup of ${r.target} at "${r.schedule}" (UTC); written to ${r.out}`,
};

export const policyPublish: Command = {
  path: ['policy', 'publish'],
  args: 'FILE',
  summary: 'sign a backup policy for the fleet (for now: to a file for `tender policy install` on board)',
  details: `The hub does not take policies yet (it will deliver them in each vessel's desired state). Until
then publish signs the policy to --out; carry that file aboard and run \`tender policy install FILE\`.`,
  options: SIGN_OPTIONS,
  async run(ctx) {
    const { policy, bytes } = signPolicy(ctx);
    const out = stringOpt(ctx, 'out') ?? `${policy.name}.policy.json`;
    writeFileAtomic(out, bytes, 0o644);
    return { ...signedView(policy, out), hub: 'not yet: install the signed file on board with tender policy install' };
  },
  human: (r: Signed) =>
    `signed policy ${r.name} #${r.sequence} to ${r.out}; the hub does not take policies yet: ` +
    `install it on board with \`tender policy install ${r.out}\``,
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
  options: {
    key: { type: 'string', description: 'the seal.key from `tender policy keygen`' },
    out: { type: 'string', description: 'where to write the opened backup (still compressed as on board)' },
  },
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    const out = requiredOpt(ctx, 'out');
    const pem = readFileSync(requiredOpt(ctx, 'key'), 'utf8');
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

export const POLICY_COMMANDS = [policySign, policyPublish, policyKeygen, backupOpen];
