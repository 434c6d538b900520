import { readFileSync } from 'node:fs';
import type { Db } from '../shared/sqlite.js';
import { openDatabase } from '../shared/sqlite.js';
import { AGENT_MIGRATIONS } from './migrations.js';

export type LinkState = 'up' | 'down' | 'refused' | 'unknown';

/** The agent's local state in SQLite (WAL): what `tender status` reads with the hub unreachable. */
export type StateStore = ReturnType<typeof createStateStore>;

export function openStateStore(path: string): StateStore {
  return createStateStore(openDatabase(path, AGENT_MIGRATIONS));
}

export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

export function createStateStore(db: Db) {
  const get = db.prepare<[string], { value: string; updated_at: number }>('SELECT value, updated_at FROM kv WHERE key = ?');
  const put = db.prepare('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at');
  const addEvent = db.prepare('INSERT INTO events (at, boot_id, type, data) VALUES (?, ?, ?, ?)');
  const countEvents = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM events');
  const recentEvents = db.prepare<[number], { seq: number; at: string; type: string; data: string }>('SELECT seq, at, type, data FROM events ORDER BY seq DESC LIMIT ?');
  const boot = bootId();

  const store = {
    db,
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
      addEvent.run(new Date().toISOString(), boot, type, JSON.stringify(data));
    },
    backlog(): number {
      return countEvents.get()!.n;
    },
    recentEvents(limit = 20) {
      return recentEvents.all(limit).map((e) => ({ ...e, data: JSON.parse(e.data) as unknown }));
    },
    close(): void {
      db.close();
    },
  };
  return store;
}
