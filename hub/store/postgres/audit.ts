import type { AuditRecord, AuditRecords } from '../hub-store.js';
import { parseJson, type PgAuditWriter, type PgDb, type Queryable } from './pg.js';

interface Row {
  id: number;
  at: number;
  actor: string;
  action: string;
  detail: string;
}

const INSERT = 'INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?) RETURNING id';

/** The audit log on PostgreSQL; `write` appends inside the caller's transaction. */
export function pgAudit(db: PgDb): { records: AuditRecords; write: PgAuditWriter } {
  const append = async (q: Queryable, entry: { actor: string; action: string; detail: unknown }, now: number) =>
    (await q.get<{ id: number }>(INSERT, [now, entry.actor, entry.action, JSON.stringify(entry.detail ?? null)]))!.id;
  return {
    async write(q, entry, now) {
      if (entry) await append(q, entry, now);
    },
    records: {
      async append(entry, now) {
        return append(db, entry, now);
      },
      async list(q) {
        const rows = await db.all<Row>('SELECT * FROM audit_log WHERE id > ? AND at >= ? ORDER BY id LIMIT ?', [
          q.after ?? 0,
          q.since ?? Number.MIN_SAFE_INTEGER,
          q.limit,
        ]);
        return rows.map((r): AuditRecord => ({
          id: r.id,
          at: r.at,
          actor: r.actor,
          action: r.action,
          detail: parseJson(r.detail),
        }));
      },
    },
  };
}
