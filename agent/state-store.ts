import { readFileSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { TenderError } from '../shared/errors.js';
import type { Db } from '../shared/sqlite.js';
import { openDatabase } from '../shared/sqlite.js';
import { AGENT_MIGRATIONS } from './migrations.js';
import { openOutbox, type Outbox } from './telemetry/outbox.js';
import { STATE_SCHEMA, type StateKey, type StateValue, type StateValues } from './state-schema.js';

export type { LinkState } from './state-schema.js';

/** A value that does not fit its key's schema was about to be written: a bug, refused before it lands. */
export class StateWriteError extends TenderError {}

/**
 * The agent's local state in SQLite (WAL): what `tender status` reads with the hub unreachable. Keys and
 * the shape of their values are in state-schema.ts. Events go to the telemetry outbox (its own SQLite
 * file), which ships them ashore when the link allows.
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
  const store = createStateStore(db, outbox, opts.log);
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

// Crew commands open the store without the agent's logger; their stdout carries the command's answer.
const stderrLog = () => pino({ name: 'state', level: 'warn' }, pino.destination(2));

export function createStateStore(db: Db, outbox: Outbox, log: Logger = stderrLog()) {
  const get = db.prepare<[string], { value: string }>('SELECT value FROM kv WHERE key = ?');
  const put = db.prepare(
    'INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ' +
      'ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
  );
  const del = db.prepare('DELETE FROM kv WHERE key = ?');
  const reported = new Set<string>();

  /** A stored value that does not fit reads as absent: logged once per key, never a crash. */
  function unfit(key: StateKey, why: string): undefined {
    if (!reported.has(key)) {
      reported.add(key);
      log.warn({ key, reason: why }, 'stored state value does not fit its schema; treated as absent');
    }
    return undefined;
  }

  function set<K extends StateKey>(key: K, value: StateValue<K> | null): void {
    if (value === null) {
      del.run(key);
      return;
    }
    const r = STATE_SCHEMA[key].safeParse(value);
    if (!r.success) throw new StateWriteError(`state ${key}: ${describeIssue(r.error)}`);
    put.run(key, JSON.stringify(r.data), Date.now());
  }

  const store = {
    db,
    outbox,
    get<K extends StateKey>(key: K): StateValue<K> | undefined {
      const row = get.get(key);
      if (!row) return undefined;
      let json: unknown;
      try {
        json = JSON.parse(row.value);
      } catch {
        return unfit(key, 'not JSON');
      }
      // Earlier versions cleared a key by storing null.
      if (json === null) return undefined;
      const r = STATE_SCHEMA[key].safeParse(json);
      // Checked just above: the cast only restores the link between the key and its schema.
      return r.success ? (r.data as StateValue<K>) : unfit(key, describeIssue(r.error));
    },
    /** null removes the key. */
    set,
    setMany(values: StateValues): void {
      db.transaction(() => {
        for (const [k, v] of Object.entries(values)) if (v !== undefined) set(k as StateKey, v as never);
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

function describeIssue(err: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const i = err.issues[0];
  if (!i) return 'invalid';
  return i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message;
}
