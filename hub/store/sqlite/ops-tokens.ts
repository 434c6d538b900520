import type { Db } from '../../../shared/sqlite.js';
import type { OpsTokenRecord, OpsTokenRecords } from '../hub-store.js';
import type { Role } from '../../../shared/protocol/names.js';
import type { AuditWriter } from './audit.js';

interface Row {
  id: string;
  token_hash: string;
  role: Role;
  name: string;
  created_at: number;
  revoked_at: number | null;
  expires_at: number | null;
}
const fromRow = (r: Row): OpsTokenRecord => ({
  id: r.id,
  tokenHash: r.token_hash,
  role: r.role,
  name: r.name,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  expiresAt: r.expires_at,
});

export function sqliteOpsTokens(db: Db, audit: AuditWriter): OpsTokenRecords {
  const insert = db.prepare(
    'INSERT INTO ops_tokens (id, token_hash, role, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const byId = db.prepare<[string], Row>('SELECT * FROM ops_tokens WHERE id = ?');
  const list = db.prepare<[], Row>('SELECT * FROM ops_tokens ORDER BY created_at, id');
  const revoke = db.prepare('UPDATE ops_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  return {
    async create(t, now, entry) {
      db.transaction(() => {
        insert.run(t.id, t.tokenHash, t.role, t.name, now, t.expiresAt ?? null);
        audit(entry, now);
      })();
    },
    async get(id) {
      const r = byId.get(id);
      return r && fromRow(r);
    },
    async list() {
      return list.all().map(fromRow);
    },
    async revoke(id, now, entry) {
      return db.transaction(() => {
        const changed = revoke.run(now, id).changes === 1;
        audit(entry, now);
        return changed;
      })();
    },
  };
}
