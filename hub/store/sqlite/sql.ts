import type { Statement } from 'better-sqlite3';
import type { Db } from '../../../shared/sqlite.js';

export { parseJson } from '../json-text.js';

/** A UNIQUE or PRIMARY KEY violation: another writer (or an earlier call) got there first. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

const statements = new WeakMap<Db, Map<string, Statement<unknown[], unknown>>>();

/** A statement built from a query's optional filters, prepared once per database and text. */
export function cachedStatement<R>(db: Db, sql: string): Statement<unknown[], R> {
  let m = statements.get(db);
  if (!m) statements.set(db, (m = new Map()));
  let s = m.get(sql);
  if (!s) m.set(sql, (s = db.prepare(sql)));
  return s as Statement<unknown[], R>;
}
