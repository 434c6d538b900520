import { randomBytes } from 'node:crypto';
import { newSecret, sameHex, sha256Hex } from '../shared/trust/secrets.js';
import { ROLES, type Role } from '../shared/protocol/names.js';
import { OPS_TOKEN_DEFAULT_TTL_SECONDS, type OpsTokenView } from '../shared/protocol/ops-bodies.js';
import type { AuditEntry, HubStore, OpsTokenRecord } from './store/hub-store.js';

// The roles are part of the API contract (a token's role travels in bodies).
export { ROLES, type Role };

export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

// Ops tokens look like tnd_<id>_<secret>: the id finds the row, the secret is compared by hash.
const TOKEN_RE = /^tnd_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface OpsToken {
  id: string;
  role: Role;
  name: string;
}

/** A new ops token: the store keeps only the hash of its secret; the whole token is shown once. */
export async function createOpsToken(
  store: HubStore,
  role: Role,
  name: string,
  now: number,
  audit?: (id: string) => AuditEntry,
  expiresAt: number | null = now + OPS_TOKEN_DEFAULT_TTL_SECONDS * 1000,
): Promise<{ token: string; id: string; expiresAt: number | null }> {
  const id = randomBytes(8).toString('hex');
  const secret = newSecret();
  await store.opsTokens.create({ id, tokenHash: sha256Hex(secret), role, name, expiresAt }, now, audit?.(id));
  return { token: `tnd_${id}_${secret}`, id, expiresAt };
}

/** What the API shows of a token (never its hash). */
export function opsTokenView(t: OpsTokenRecord, now: number): OpsTokenView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    id: t.id,
    role: t.role,
    name: t.name,
    state: t.revokedAt !== null ? 'revoked' : t.expiresAt !== null && t.expiresAt <= now ? 'expired' : 'active',
    createdAt: new Date(t.createdAt).toISOString(),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
  };
}

/** The token's identity, or undefined when it is malformed, unknown, revoked or expired at `now`. */
export async function checkOpsToken(
  store: HubStore,
  token: string,
  now: number = Date.now(),
): Promise<OpsToken | undefined> {
  const m = TOKEN_RE.exec(token);
  if (!m) return undefined;
  const row = await store.opsTokens.get(m[1]!);
  if (!row || row.revokedAt !== null) return undefined;
  if (row.expiresAt !== null && row.expiresAt <= now) return undefined;
  if (!sameHex(row.tokenHash, sha256Hex(m[2]!))) return undefined;
  return { id: row.id, role: row.role, name: row.name };
}
