import { z } from 'zod';
import { TenderError } from '../errors.js';
import { keyIdOf, publicKeyFromBase64, type PublicKey } from './keys.js';
import {
  expectType,
  parsePayload,
  readEnvelope,
  requireThreshold,
  type DocumentType,
  type Envelope,
} from './envelope.js';
import { describeZodError } from '../validation.js';

/**
 * The root document says which keys may sign what. Root keys (offline, k-of-n) sign the root itself;
 * release keys sign releases, policies and rollback directives. Root N+1 must carry a threshold of root
 * N's keys and of its own, so a thief of one old key cannot rotate, and a rotation cannot lock itself out.
 */
export class RootError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_root');
  }
}

export class RootExpiredError extends TenderError {
  constructor(message: string) {
    super(message, 'root_expired');
  }
}

// An agent offline for a year may have missed a few rotations; more than this in one go is an attack
// (an endless chain of roots) or a broken hub.
export const MAX_ROOT_ROTATIONS_PER_UPDATE = 32;
export const ROOT_SPEC_VERSION = 1;

const keyid = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits');
const roleSchema = z.strictObject({
  keyids: z.array(keyid).min(1).max(16),
  threshold: z.number().int().min(1).max(16),
});
export const rootPayloadSchema = z.strictObject({
  _type: z.literal('root'),
  spec: z.literal(ROOT_SPEC_VERSION),
  version: z.number().int().min(1),
  expires: z.iso.datetime(),
  keys: z
    .record(keyid, z.strictObject({ type: z.literal('ed25519'), public: z.string().max(64) }))
    .refine((keys) => Object.keys(keys).length <= 64, 'at most 64 keys'),
  roles: z.strictObject({ root: roleSchema, release: roleSchema }),
});
export type RootPayload = z.infer<typeof rootPayloadSchema>;
export type RoleName = keyof RootPayload['roles'];

export interface TrustedRoot {
  payload: RootPayload;
  version: number;
  expires: Date;
  envelope: Envelope;
  role(name: RoleName): { keys: Map<string, PublicKey>; threshold: number };
}

function fail(msg: string): never {
  throw new RootError(msg);
}

/** Shape and internal consistency of a root payload; no signatures checked here. */
export function parseRootPayload(env: Envelope): TrustedRoot {
  expectType(env, 'root');
  const parsed = rootPayloadSchema.safeParse(parsePayload(env));
  if (!parsed.success) fail(`root document invalid: ${describeZodError(parsed.error, 'payload')}`);
  const payload = parsed.data;
  const keys = new Map<string, PublicKey>();
  for (const [id, k] of Object.entries(payload.keys)) {
    let pk: PublicKey;
    try {
      pk = publicKeyFromBase64(k.public);
    } catch (err) {
      fail(`root v${payload.version}: key ${id.slice(0, 16)}: ${(err as Error).message}`);
    }
    // An id is the digest of the key's bytes, so one key cannot be listed under two ids to count twice.
    if (keyIdOf(pk.raw) !== id)
      fail(`root v${payload.version}: key id ${id.slice(0, 16)} does not match its public key`);
    keys.set(id, pk);
  }
  const roles = {} as Record<RoleName, { keys: Map<string, PublicKey>; threshold: number }>;
  for (const name of ['root', 'release'] as const) {
    const role = payload.roles[name];
    const roleKeys = new Map<string, PublicKey>();
    for (const id of role.keyids) {
      const k = keys.get(id);
      if (!k) fail(`root v${payload.version}: ${name} role lists key ${id.slice(0, 16)} that is not in keys`);
      roleKeys.set(id, k);
    }
    if (role.threshold > roleKeys.size) {
      fail(`root v${payload.version}: ${name} threshold ${role.threshold} exceeds its ${roleKeys.size} distinct keys`);
    }
    roles[name] = { keys: roleKeys, threshold: role.threshold };
  }
  for (const id of roles.root.keys.keys()) {
    // Root keys live offline; one that also signs releases would be online and defeat the split.
    if (roles.release.keys.has(id))
      fail(`root v${payload.version}: key ${id.slice(0, 16)} is in both the root and release roles`);
  }
  return {
    payload,
    version: payload.version,
    expires: new Date(payload.expires),
    envelope: env,
    role: (name) => roles[name],
  };
}

/** Trust a root on its own signatures: the first root an operator installs, or `--root FILE` on the CLI. */
export function verifyInitialRoot(bytes: Uint8Array): TrustedRoot {
  const env = readEnvelope(bytes);
  const root = parseRootPayload(env);
  requireThreshold(env, { ...root.role('root'), role: `root v${root.version}` });
  return root;
}

/** Verify root N+1 against trusted root N: exactly the next version, a threshold of old and new root keys. */
export function verifyNextRoot(trusted: TrustedRoot, bytes: Uint8Array): TrustedRoot {
  const env = readEnvelope(bytes);
  const next = parseRootPayload(env);
  if (next.version !== trusted.version + 1) {
    fail(
      `root v${next.version} offered where v${trusted.version + 1} is next (a rotation ` +
        `may not skip or repeat a version)`,
    );
  }
  requireThreshold(env, { ...trusted.role('root'), role: `root v${trusted.version} (old keys)` });
  requireThreshold(env, { ...next.role('root'), role: `root v${next.version} (new keys)` });
  return next;
}

/**
 * Walk rotations from the trusted root: fetch(version) returns the signed root of that version or null when
 * there is none newer. Stops at a cap, so an endless chain cannot keep the agent busy.
 */
export async function walkRootChain(
  trusted: TrustedRoot,
  fetch: (version: number) => Promise<Uint8Array | null>,
  maxSteps = MAX_ROOT_ROTATIONS_PER_UPDATE,
): Promise<{ root: TrustedRoot; steps: Uint8Array[] }> {
  let root = trusted;
  const steps: Uint8Array[] = [];
  for (let i = 0; ; i++) {
    const bytes = await fetch(root.version + 1);
    if (!bytes) return { root, steps };
    if (i >= maxSteps) fail(`more than ${maxSteps} root rotations in one update; stopped at v${root.version}`);
    root = verifyNextRoot(root, bytes);
    steps.push(bytes);
  }
}

export function assertRootFresh(root: TrustedRoot, now: Date): void {
  if (root.expires.getTime() <= now.getTime()) {
    throw new RootExpiredError(`root v${root.version} expired at ${root.payload.expires}`);
  }
}

export interface VerifiedDocument {
  type: DocumentType;
  payload: Record<string, unknown>;
  signers: string[];
}

/**
 * Verify a release, policy or rollback directive under a trusted root: declared type, a threshold of
 * release keys, then a strict parse whose `_type` must agree with the signed type.
 */
export function verifySignedDocument(
  root: TrustedRoot,
  env: Envelope,
  type: Exclude<DocumentType, 'root'>,
): VerifiedDocument {
  expectType(env, type);
  const signers = requireThreshold(env, { ...root.role('release'), role: 'release' });
  const payload = parsePayload(env, 64 * 1024 * 1024);
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    fail(`${type} payload is not an object`);
  const obj = payload as Record<string, unknown>;
  if (obj._type !== type) fail(`${type} payload says _type ${JSON.stringify(obj._type)}`);
  return { type, payload: obj, signers };
}
