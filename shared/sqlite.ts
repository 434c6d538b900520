import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { TenderError } from './errors.js';

export class DatabaseOpenError extends TenderError {}

export type Db = Database.Database;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/**
 * The single executable carries better-sqlite3's addon as an asset and loads it itself (installer/
 * sea-entry.ts); run from the sources, better-sqlite3 finds its own. Set once at start-up, before any
 * database opens.
 */
let processNativeBinding: unknown;
export function useSqliteAddon(addon: unknown): void {
  processNativeBinding = addon;
}

/**
 * Open a SQLite file in WAL mode and bring its schema up to date. Migrations are plain strings in the code
 * (not files beside it) so the single executable carries them.
 */
export function openDatabase(path: string, migrations: Migration[], options: { nativeBinding?: unknown } = {}): Db {
  let db: Db;
  try {
    // SQLite makes a new file 0644 whatever the umask allows; made here, the file gets what the process's
    // umask grants (the vessel's services share theirs with the `tender` group: UMask=0007), and SQLite
    // gives its -wal and -shm files the same mode.
    if (path !== ':memory:') closeSync(openSync(path, 'a', 0o666));
    const nativeBinding = options.nativeBinding ?? processNativeBinding;
    db = new Database(path, nativeBinding ? { nativeBinding: nativeBinding as string } : {});
  } catch (err) {
    throw new DatabaseOpenError(`cannot open database ${path}: ${(err as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  // FULL: a committed row survives a power cut, not just a crash; the cost is one fsync per commit,
  // and every hot path here batches its writes into a few transactions.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, migrations, path);
  return db;
}

function migrate(db: Db, migrations: Migration[], path: string): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT ' +
      'NOT NULL, applied_at INTEGER NOT NULL)',
  );
  const applied = new Set((db.prepare('SELECT id FROM schema_migrations').all() as { id: number }[]).map((r) => r.id));
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.id));
  if (newest > known) {
    throw new DatabaseOpenError(
      `${path} has schema ${newest}, newer than this tender knows (${known}); upgrade tender`,
    );
  }
  for (const m of migrations.sort((a, b) => a.id - b.id)) {
    if (applied.has(m.id)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, Date.now());
    })();
  }
}
