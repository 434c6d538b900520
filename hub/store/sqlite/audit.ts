import type { Db } from '../../../shared/sqlite.js';
import type { AuditEntry, AuditRecord, AuditRecords } from '../hub-store.js';
import { parseJson } from './sql.js';

/** Appends inside the caller's transaction, so an action and its audit record commit together. */
export type AuditWriter = (entry: AuditEntry | undefined, now: number) => void;

interface Row {
  id: number;
  at: number;
  actor: string;
  action: string;
  detail: string;
}

export function sqliteAudit(db: Db): { records: AuditRecords; write: AuditWriter } {
  const insert = db.prepare('INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)');
  const list = db.prepare<[number, number, number], Row>(
    'SELECT * FROM audit_log WHERE id > ? AND at >= ? ORDER BY id LIMIT ?',
  );
  const append = (entry: AuditEntry, now: number) =>
    Number(insert.run(now, entry.actor, entry.action, JSON.stringify(entry.detail ?? null)).lastInsertRowid);
  return {
    write(entry, now) {
      if (entry) append(entry, now);
    },
    records: {
      async append(entry, now) {
        return append(entry, now);
      },
      async list(q) {
        return list.all(q.after ?? 0, q.since ?? Number.MIN_SAFE_INTEGER, q.limit).map((r): AuditRecord => ({
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
