import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TenderError, UsageError } from '../shared/errors.js';
import { ensureDir, writeFileAtomic } from '../shared/fs-atomic.js';
import { generateKey, keyIdOf, loadPrivateKey, shortKeyId, type PrivateKey } from '../shared/trust/keys.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import {
  verifyInitialRoot,
  verifyNextRoot,
  ROOT_SPEC_VERSION,
  type RootPayload,
  type TrustedRoot,
} from '../shared/trust/root.js';
import { intOpt, listOpt, requiredOpt, stringOpt, type Command, type CommandContext } from '../shared/cli.js';
import { parseDuration } from '../shared/duration.js';

export class KeysCommandError extends TenderError {}

// A year: long enough that an offline root ceremony is a yearly event, short enough that a lost root
// key set stops being trusted for new installs on its own.
const DEFAULT_ROOT_EXPIRY = '365d';
const ROOT_FILE = 'root.json';

interface KeyFileInfo {
  file: string;
  role: 'root' | 'release';
  key: PrivateKey;
}

function writeKeyFile(dir: string, role: 'root' | 'release'): KeyFileInfo {
  const { privatePem, key } = generateKey();
  const file = join(dir, `${role}-${shortKeyId(key.keyid)}.key`);
  writeFileSync(file, privatePem, { mode: 0o600, flag: 'wx' });
  return { file, role, key };
}

function rootPayload(
  version: number,
  expiresMs: number,
  rootRaw: Buffer[],
  rootThreshold: number,
  release: Buffer[],
  releaseThreshold: number,
): RootPayload {
  const keys: RootPayload['keys'] = {};
  const ids = (raws: Buffer[]) =>
    raws.map((raw) => {
      const id = keyIdOf(raw);
      keys[id] = { type: 'ed25519', public: raw.toString('base64') };
      return id;
    });
  const rootIds = ids(rootRaw);
  const releaseIds = ids(release);
  return {
    _type: 'root',
    spec: ROOT_SPEC_VERSION,
    version,
    expires: new Date(Date.now() + expiresMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    keys,
    roles: {
      root: { keyids: rootIds, threshold: rootThreshold },
      release: { keyids: releaseIds, threshold: releaseThreshold },
    },
  };
}

function printKeys(result: {
  dir: string;
  version: number;
  keys: { role: string; keyid: string; file?: string }[];
  note?: string;
}): string {
  const lines = [`root v${result.version} written to ${join(result.dir, ROOT_FILE)}`];
  for (const k of result.keys) lines.push(`  ${k.role.padEnd(8)} ${k.keyid}${k.file ? `  ${k.file}` : ''}`);
  if (result.note) lines.push(result.note);
  return lines.join('\n');
}

export const keysInit: Command = {
  path: ['keys', 'init'],
  summary: 'create root keys (k-of-n) and release keys, and the first signed root document',
  options: {
    out: { type: 'string', description: 'directory for the key files and root.json (created 0700)' },
    'root-keys': { type: 'string', description: 'number of root keys', default: '3' },
    'root-threshold': { type: 'string', description: 'root signatures required', default: '2' },
    'release-keys': { type: 'string', description: 'number of release keys', default: '1' },
    'release-threshold': { type: 'string', description: 'release signatures required', default: '1' },
    expires: { type: 'string', description: 'root lifetime', default: DEFAULT_ROOT_EXPIRY },
  },
  details: 'Keep the root-*.key files offline and apart; release-*.key signs releases on the publisher machine.',
  async run(ctx) {
    const dir = requiredOpt(ctx, 'out');
    const nRoot = intOpt(ctx, 'root-keys', 3, 1, 16);
    const tRoot = intOpt(ctx, 'root-threshold', Math.min(2, nRoot), 1, nRoot);
    const nRel = intOpt(ctx, 'release-keys', 1, 1, 16);
    const tRel = intOpt(ctx, 'release-threshold', 1, 1, nRel);
    const expires = parseDuration(stringOpt(ctx, 'expires') ?? DEFAULT_ROOT_EXPIRY, '--expires');
    if (existsSync(join(dir, ROOT_FILE)))
      throw new KeysCommandError(
        `${join(dir, ROOT_FILE)} already exists; refusing to overwrite keys (use keys rotate)`,
      );
    ensureDir(dir);
    const roots = Array.from({ length: nRoot }, () => writeKeyFile(dir, 'root'));
    const releases = Array.from({ length: nRel }, () => writeKeyFile(dir, 'release'));
    const payload = rootPayload(
      1,
      expires,
      roots.map((r) => r.key.publicRaw),
      tRoot,
      releases.map((r) => r.key.publicRaw),
      tRel,
    );
    const env = signEnvelope(
      'root',
      payload,
      roots.map((r) => r.key),
    );
    const bytes = envelopeBytes(env);
    verifyInitialRoot(bytes);
    writeFileAtomic(join(dir, 'root.1.json'), bytes, 0o644);
    writeFileAtomic(join(dir, ROOT_FILE), bytes, 0o644);
    return {
      dir,
      version: 1,
      rootThreshold: tRoot,
      releaseThreshold: tRel,
      keys: [...roots, ...releases].map((k) => ({ role: k.role, keyid: k.key.keyid, file: k.file })),
    };
  },
  human: printKeys,
};

function loadKeysFrom(dir: string, extra: string[]): PrivateKey[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.key'))
    .map((f) => join(dir, f));
  return [...files, ...extra].map(loadPrivateKey);
}

async function rotate(ctx: CommandContext, revoke: string[]) {
  const dir = requiredOpt(ctx, 'dir');
  const current = verifyInitialRoot(readFileSync(join(dir, ROOT_FILE)));
  const available = loadKeysFrom(dir, listOpt(ctx, 'key'));
  const byId = new Map(available.map((k) => [k.keyid, k]));
  const resolve = (prefix: string) => {
    const ids = Object.keys(current.payload.keys).filter((id) => id.startsWith(prefix));
    if (prefix.length < 8 || ids.length !== 1)
      throw new UsageError(
        `key id ${JSON.stringify(prefix)} does not name exactly one key of root v${current.version}`,
      );
    return ids[0]!;
  };
  const revoked = new Set(revoke.map(resolve));
  const added: KeyFileInfo[] = [];
  for (let i = 0; i < intOpt(ctx, 'add-root', 0, 0, 16); i++) added.push(writeKeyFile(dir, 'root'));
  for (let i = 0; i < intOpt(ctx, 'add-release', 0, 0, 16); i++) added.push(writeKeyFile(dir, 'release'));
  for (const a of added) byId.set(a.key.keyid, a.key);

  const keep = (role: 'root' | 'release') => [
    ...[...current.role(role).keys.values()].filter((k) => !revoked.has(k.keyid)).map((k) => k.raw),
    ...added.filter((a) => a.role === role).map((a) => a.key.publicRaw),
  ];
  const rootRaw = keep('root');
  const relRaw = keep('release');
  if (rootRaw.length === 0 || relRaw.length === 0)
    throw new UsageError('a root needs at least one root key and one release key');
  const tRoot = intOpt(
    ctx,
    'root-threshold',
    Math.min(current.role('root').threshold, rootRaw.length),
    1,
    rootRaw.length,
  );
  const tRel = intOpt(
    ctx,
    'release-threshold',
    Math.min(current.role('release').threshold, relRaw.length),
    1,
    relRaw.length,
  );
  const expires = parseDuration(stringOpt(ctx, 'expires') ?? DEFAULT_ROOT_EXPIRY, '--expires');
  const payload = rootPayload(current.version + 1, expires, rootRaw, tRoot, relRaw, tRel);

  const signers = new Map<string, PrivateKey>();
  for (const id of [...current.role('root').keys.keys(), ...payload.roles.root.keyids]) {
    const k = byId.get(id);
    if (k) signers.set(id, k);
  }
  const env = signEnvelope('root', payload, [...signers.values()]);
  const bytes = envelopeBytes(env);
  let next: TrustedRoot;
  try {
    next = verifyNextRoot(current, bytes);
  } catch (err) {
    throw new KeysCommandError(
      `cannot sign root v${current.version + 1} with the keys in ${dir}: ` +
        `${(err as Error).message} (pass more root keys with --key FILE)`,
    );
  }
  writeFileAtomic(join(dir, `root.${next.version}.json`), bytes, 0o644);
  writeFileAtomic(join(dir, ROOT_FILE), bytes, 0o644);
  return {
    dir,
    version: next.version,
    revoked: [...revoked],
    keys: [
      ...payload.roles.root.keyids.map((keyid) => ({ role: 'root', keyid })),
      ...payload.roles.release.keyids.map((keyid) => ({ role: 'release', keyid })),
    ],
    note: `push it to the hub: tender hub root push ${join(dir, ROOT_FILE)}`,
  };
}

const rotateOptions: Command['options'] = {
  dir: { type: 'string', description: 'key directory holding root.json and key files' },
  key: { type: 'string', multiple: true, description: 'an extra private key file to sign with (root keys kept apart)' },
  'add-root': { type: 'string', description: 'generate this many new root keys', default: '0' },
  'add-release': { type: 'string', description: 'generate this many new release keys', default: '0' },
  'root-threshold': { type: 'string', description: 'root signatures required in the new root' },
  'release-threshold': { type: 'string', description: 'release signatures required in the new root' },
  expires: { type: 'string', description: 'new root lifetime', default: DEFAULT_ROOT_EXPIRY },
};

export const keysRotate: Command = {
  path: ['keys', 'rotate'],
  summary: 'write the next root document (add keys, change thresholds, renew expiry), signed by old and new root keys',
  options: {
    ...rotateOptions,
    revoke: { type: 'string', multiple: true, description: 'key id (or 8+ hex prefix) to remove' },
  },
  async run(ctx) {
    return rotate(ctx, listOpt(ctx, 'revoke'));
  },
  human: printKeys,
};

export const keysRevoke: Command = {
  path: ['keys', 'revoke'],
  args: 'KEYID...',
  summary: 'write the next root document without the given keys',
  options: rotateOptions,
  async run(ctx) {
    if (ctx.positionals.length === 0) throw new UsageError('missing KEYID');
    return rotate(ctx, ctx.positionals);
  },
  human: printKeys,
};
