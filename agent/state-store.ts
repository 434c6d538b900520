import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Db } from '../shared/sqlite.js';
import { openDatabase } from '../shared/sqlite.js';
import { AGENT_MIGRATIONS } from './migrations.js';
import { openOutbox, type Outbox } from './telemetry/outbox.js';

export type LinkState = 'up' | 'down' | 'refused' | 'unknown';

/**
 * The agent's local state in SQLite (WAL): what `tender status` reads with the hub unreachable. Events go
 * to the telemetry outbox (its own SQLite file), which ships them ashore when the link allows.
 */
export type StateStore = ReturnType<typeof createStateStore>;

export interface StatePaths {
  db: string;
  outbox: string;
}

export function openStateStore(
  paths: StatePaths,
  opts: { outboxCapBytes?: number; freeDiskFloorBytes?: number; log?: Logger; now?: () => number } = {},
): StateStore {
  const db = openDatabase(paths.db, AGENT_MIGRATIONS);
  const outbox = openOutbox({
    path: paths.outbox,
    bootId: bootId(),
    capBytes: opts.outboxCapBytes,
    freeDiskFloorBytes: opts.freeDiskFloorBytes,
    log: opts.log,
    now: opts.now,
  });
  const store = createStateStore(db, outbox);
  if (outbox.movedAside) store.event('outbox.corrupt', { movedTo: outbox.movedAside });
  return store;
}

export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function createStateStore(db: Db, outbox: Outbox) {
  const get = db.prepare<[string], { value: string; updated_at: number }>(
    'SELECT value, updated_at FROM kv WHERE key = ?',
  );
  const put = db.prepare(
    'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
  );

  const store = {
    db,
    outbox,
    get<T>(key: string): T | undefined {
      const r = get.get(key);
      return r ? (JSON.parse(r.value) as T) : undefined;
    },
    set(key: string, value: unknown): void {
      put.run(key, JSON.stringify(value), Date.now());
    },
    setMany(values: Record<string, unknown>): void {
      db.transaction(() => {
        for (const [k, v] of Object.entries(values)) store.set(k, v);
      })();
    },
    event(type: string, data: Record<string, unknown>): void {
      outbox.event(type, data);
    },
    backlog(): number {
      return outbox.stats().records;
    },
    close(): void {
      db.close();
      outbox.close();
    },
  };
  return store;
}
