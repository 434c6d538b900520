import pg from 'pg';

/**
 * The few things the PostgreSQL store needs from `pg`: a pool, queries written with `?` placeholders (the
 * SQLite statements' spelling, turned into $1, $2, ... once per text), and transactions. Times are unix ms
 * in BIGINT columns and counts are BIGINT or NUMERIC: both come back as JS numbers (every value the hub
 * stores is far inside the safe integer range), not as the strings `pg` returns by default.
 */
export interface Queryable {
  all<R>(sql: string, params?: unknown[]): Promise<R[]>;
  get<R>(sql: string, params?: unknown[]): Promise<R | undefined>;
  /** Rows changed (INSERT/UPDATE/DELETE). */
  run(sql: string, params?: unknown[]): Promise<number>;
}

export interface PgDb extends Queryable {
  readonly pool: pg.Pool;
  /**
   * One transaction on one pooled connection. With `lock`, it first takes the store's write lock
   * (pg_advisory_xact_lock, released at commit or rollback): the control-plane steps that read before
   * they write (publish, claim, start a rollout, ...) run one at a time across every hub process, as
   * SQLite's BEGIN IMMEDIATE makes them on one file. High-volume writes (telemetry, contact, packs) do
   * not take it; they rely on unique keys and ON CONFLICT.
   */
  tx<T>(fn: (q: Queryable) => Promise<T>, opts?: { lock?: boolean }): Promise<T>;
  close(): Promise<void>;
}

// The key of the store's write lock, and of the migration lock (pg_advisory_lock keys are bigint).
export const WRITE_LOCK = 7_244_001;
export const MIGRATION_LOCK = 7_244_000;

const INT8 = 20;
const NUMERIC = 1700;
const parseNumber = (v: string) => Number(v);

const converted = new Map<string, string>();
/** `?` placeholders to $n, outside quoted text (the statements never use the jsonb `?` operator). */
export function pgSql(sql: string): string {
  let out = converted.get(sql);
  if (out !== undefined) return out;
  let n = 0;
  let quoted = false;
  out = '';
  for (const ch of sql) {
    if (ch === "'") quoted = !quoted;
    out += ch === '?' && !quoted ? `$${++n}` : ch;
  }
  converted.set(sql, out);
  return out;
}

function queryable(c: pg.Pool | pg.PoolClient): Queryable {
  return {
    async all<R>(sql: string, params: unknown[] = []) {
      return (await c.query(pgSql(sql), params)).rows as R[];
    },
    async get<R>(sql: string, params: unknown[] = []) {
      return (await c.query(pgSql(sql), params)).rows[0] as R | undefined;
    },
    async run(sql: string, params: unknown[] = []) {
      return (await c.query(pgSql(sql), params)).rowCount ?? 0;
    },
  };
}

export function openPg(url: string, opts: { max?: number } = {}): PgDb {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8 || oid === NUMERIC ? parseNumber : pg.types.getTypeParser(oid, format as 'text')) as never,
    },
  });
  // An idle client that loses its connection (a restarted server) is dropped by the pool; without a
  // listener the 'error' event would end the process.
  pool.on('error', () => undefined);
  const base = queryable(pool);
  let closed = false;
  return {
    pool,
    ...base,
    async tx(fn, o = {}) {
      for (let attempt = 1; ; attempt++) {
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          if (o.lock) await c.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
          const out = await fn(queryable(c));
          await c.query('COMMIT');
          return out;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          // A deadlock or serialization failure rolled everything back: the callback runs again (it only
          // talks to the database, so running it twice is safe), a few times, then the error stands.
          if (!isRetryable(err) || attempt >= TX_ATTEMPTS) throw err;
        } finally {
          c.release();
        }
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

const TX_ATTEMPTS = 5;
/** Deadlock detected, serialization failure: the transaction may simply be run again. */
const isRetryable = (err: unknown) => ['40P01', '40001'].includes(String((err as { code?: unknown }).code));

/** A UNIQUE or PRIMARY KEY violation: another writer (or an earlier call) got there first. */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown }).code === '23505';
}

/** PostgreSQL text cannot hold NUL: a vessel's line that carries one is stored with U+FFFD instead. */
export const noNul = (s: string): string => (s.includes('\0') ? s.replace(/\0/g, '\uFFFD') : s);

export { parseJson } from '../json-text.js';

/** Writes the audit record of an ops action inside the caller's transaction (nothing without an entry). */
export type PgAuditWriter = (
  q: Queryable,
  entry: { actor: string; action: string; detail: unknown } | undefined,
  now: number,
) => Promise<void>;
