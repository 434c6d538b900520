import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { openDatabase } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { HubChunkStore } from './hub-store.js';
import { HUB_MIGRATIONS } from './migrations.js';
import { migratePg, PG_MIGRATIONS } from './postgres/migrations.js';
import { noNul, openPg, type Queryable } from './postgres/pg.js';

export class HubMigrateError extends TenderError {}

// Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table.
const BATCH_ROWS = 500;
// Tables of the embedded schema with no PostgreSQL counterpart: the FTS index (a generated tsvector
// there) and the pre-wave single target per vessel (folded into app_targets by SQLite migration 6).
const NOT_COPIED = new Set(['schema_migrations', 'logs_fts', 'vessel_targets']);
const DIGEST_RE = /^[0-9a-f]{64}$/;

export interface MigrateReport {
  schema: number;
  tables: Record<string, number>;
  chunks: { copied: number; present: number };
}

/** Applies the PostgreSQL schema migrations not yet applied; returns the schema version. */
export async function migratePgSchema(url: string): Promise<number> {
  const db = openPg(url, { max: 1 });
  try {
    await migratePg(db);
    return (await db.get<{ v: number }>('SELECT MAX(id) AS v FROM schema_migrations'))!.v;
  } finally {
    await db.close();
  }
}

/**
 * Moves an embedded hub (DATA/hub.db, DATA/chunks) into PostgreSQL and a chunk store, without re-enrolling
 * any vessel: every row is copied as it is (vessel ids, keys, tokens, releases, sequences, audit ids), so
 * vessels authenticate against the new hubs exactly as before. The records go in one transaction (all or
 * none); the target must be empty. Chunks are copied after, each verified as it is stored; a copy cut off
 * is run again and skips what is there. Stop the embedded hub first: rows written after are not copied.
 */
export async function migrateSqliteToPg(
  from: string,
  to: string,
  chunks: HubChunkStore,
  log: (msg: string) => void = () => undefined,
): Promise<MigrateReport> {
  const lite = openDatabase(join(from, 'hub.db'), HUB_MIGRATIONS);
  const db = openPg(to, { max: 2 });
  try {
    await migratePg(db);
    const pgTables = await tablesInFkOrder(db);
    const tables: Record<string, number> = {};
    const nonEmpty = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM vessels');
    const hasRoots = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM roots');
    if (nonEmpty!.n > 0 || hasRoots!.n > 0)
      throw new HubMigrateError(
        `the target database already holds a hub (vessels or roots): migrate into an empty one`,
      );
    const liteTables = new Set(
      (lite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    for (const t of liteTables)
      if (!NOT_COPIED.has(t) && !pgTables.some((p) => p.table === t) && !t.startsWith('logs_fts'))
        throw new HubMigrateError(`table ${t} of ${from}/hub.db has no PostgreSQL counterpart: upgrade tender`);
    await db.tx(async (q) => {
      for (const { table, columns, identity } of pgTables) {
        if (!liteTables.has(table)) continue;
        const liteColumns = new Set(
          (lite.prepare(`PRAGMA table_info(${quoteIdent(table)})`).all() as { name: string }[]).map((c) => c.name),
        );
        const cols = columns.filter((c) => liteColumns.has(c));
        let n = 0;
        let batch: unknown[][] = [];
        const flush = async () => {
          if (batch.length) await insertRows(q, table, cols, batch);
          n += batch.length;
          batch = [];
        };
        const rows = lite.prepare(`SELECT ${cols.map(quoteIdent).join(', ')} FROM ${quoteIdent(table)}`).raw();
        for (const row of rows.iterate() as Iterable<unknown[]>) {
          batch.push(row.map((v) => (typeof v === 'string' ? noNul(v) : v)));
          if (batch.length >= BATCH_ROWS) await flush();
        }
        await flush();
        if (identity)
          await q.run(
            `SELECT setval(pg_get_serial_sequence('${table}', '${identity}'),
               COALESCE((SELECT MAX(${quoteIdent(identity)}) FROM ${quoteIdent(table)}), 0) + 1, false)`,
          );
        tables[table] = n;
        log(`${table}: ${n} rows`);
      }
    });
    const copied = await copyChunks(join(from, 'chunks'), chunks, log);
    return { schema: PG_MIGRATIONS.at(-1)!.id, tables, chunks: copied };
  } finally {
    lite.close();
    await db.close();
  }
}

/** Every chunk file of an embedded hub's chunk folder into the target store (present ones skipped). */
export async function copyChunks(
  dir: string,
  target: HubChunkStore,
  log: (msg: string) => void = () => undefined,
): Promise<{ copied: number; present: number }> {
  let copied = 0;
  let present = 0;
  let shards: string[];
  try {
    shards = (await readdir(dir)).filter((s) => /^[0-9a-f]{2}$/.test(s)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { copied, present };
    throw err;
  }
  for (const shard of shards) {
    const names = (await readdir(join(dir, shard))).filter((n) => DIGEST_RE.test(n));
    const absent = new Set(await target.missing(names));
    present += names.length - absent.size;
    for (const digest of absent) {
      const compressed = await readFile(join(dir, shard, digest));
      // put() checks the bytes inflate to this size and digest: a damaged file fails the copy, loudly.
      await target.put(digest, compressed, brotliDecompressSync(compressed).byteLength);
      copied++;
    }
  }
  log(`chunks: ${copied} copied, ${present} already there`);
  return { copied, present };
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function insertRows(q: Queryable, table: string, cols: string[], rows: unknown[][]): Promise<void> {
  const values = rows.map((_, i) => `(${cols.map((_c, j) => `$${i * cols.length + j + 1}`).join(', ')})`);
  // $n placeholders already: no '?' conversion happens on text that has none.
  await q.run(
    `INSERT INTO ${quoteIdent(table)} (${cols.map(quoteIdent).join(', ')}) VALUES ${values.join(', ')}`,
    rows.flat(),
  );
}

/** The public tables with their writable columns, parents before children (foreign keys). */
async function tablesInFkOrder(
  db: Queryable,
): Promise<{ table: string; columns: string[]; identity: string | undefined }[]> {
  const cols = await db.all<{ t: string; c: string; generated: string; identity: string }>(
    `SELECT table_name AS t, column_name AS c, is_generated AS generated, is_identity AS identity
     FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
     ORDER BY table_name, ordinal_position`,
  );
  const fks = await db.all<{ child: string; parent: string }>(
    `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint
     WHERE contype = 'f' AND connamespace = 'public'::regnamespace`,
  );
  const byTable = new Map<string, { columns: string[]; identity: string | undefined }>();
  for (const r of cols) {
    const e = byTable.get(r.t) ?? { columns: [], identity: undefined };
    if (r.generated !== 'ALWAYS') e.columns.push(r.c);
    if (r.identity === 'YES') e.identity = r.c;
    byTable.set(r.t, e);
  }
  const out: { table: string; columns: string[]; identity: string | undefined }[] = [];
  const done = new Set<string>();
  const visit = (t: string, path: Set<string>) => {
    if (done.has(t) || path.has(t)) return;
    path.add(t);
    for (const fk of fks) if (fk.child === t && fk.parent !== t) visit(fk.parent, path);
    done.add(t);
    out.push({ table: t, ...byTable.get(t)! });
  };
  for (const t of [...byTable.keys()].sort()) visit(t, new Set());
  return out;
}
