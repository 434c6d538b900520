import type { Role } from '../../../shared/protocol/names.js';
import type { OpsTokenRecord, OpsTokenRecords } from '../hub-store.js';
import type { PgAuditWriter, PgDb } from './pg.js';

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

export function pgOpsTokens(db: PgDb, audit: PgAuditWriter): OpsTokenRecords {
  return {
    async create(t, now, entry) {
      await db.tx(async (q) => {
        await q.run(
          'INSERT INTO ops_tokens (id, token_hash, role, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
          [t.id, t.tokenHash, t.role, t.name, now, t.expiresAt ?? null],
        );
        await audit(q, entry, now);
      });
    },
    async get(id) {
      const r = await db.get<Row>('SELECT * FROM ops_tokens WHERE id = ?', [id]);
      return r && fromRow(r);
    },
    async list() {
      return (await db.all<Row>('SELECT * FROM ops_tokens ORDER BY created_at, id')).map(fromRow);
    },
    async revoke(id, now, entry) {
      return db.tx(async (q) => {
        const changed =
          (await q.run('UPDATE ops_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])) === 1;
        await audit(q, entry, now);
        return changed;
      });
    },
  };
}
