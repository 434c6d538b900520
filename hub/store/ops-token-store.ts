import { randomBytes } from 'node:crypto';
import type { Db } from '../../shared/sqlite.js';
import { newSecret, sameHex, sha256Hex } from '../../shared/trust/secrets.js';
import { ROLES, type Role } from '../../shared/protocol/names.js';

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

export type OpsTokenStore = ReturnType<typeof createOpsTokenStore>;

export function createOpsTokenStore(db: Db) {
  const insert = db.prepare('INSERT INTO ops_tokens (id, token_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)');
  const find = db.prepare<
    [string],
    { id: string; token_hash: string; role: Role; name: string; revoked_at: number | null }
  >('SELECT * FROM ops_tokens WHERE id = ?');
  const revoke = db.prepare('UPDATE ops_tokens SET revoked_at = ? WHERE id = ?');
  return {
    create(role: Role, name: string): { token: string; id: string } {
      const id = randomBytes(8).toString('hex');
      const secret = newSecret();
      insert.run(id, sha256Hex(secret), role, name, Date.now());
      return { token: `tnd_${id}_${secret}`, id };
    },
    /** The token's identity, or undefined when it is malformed, unknown or revoked. */
    check(token: string): OpsToken | undefined {
      const m = TOKEN_RE.exec(token);
      if (!m) return undefined;
      const row = find.get(m[1]!);
      if (!row || row.revoked_at !== null) return undefined;
      if (!sameHex(row.token_hash, sha256Hex(m[2]!))) return undefined;
      return { id: row.id, role: row.role, name: row.name };
    },
    revoke(id: string): void {
      revoke.run(Date.now(), id);
    },
  };
}
