import { existsSync, renameSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { openDatabase, type Db, type Migration } from '../../shared/sqlite.js';
import { errorMessage } from '../../shared/errors.js';
import { CLASS, CLASS_NAMES, type RecordClass } from '../../shared/protocol/telemetry-wire.js';

/**
 * The telemetry outbox: one SQLite file (WAL) holding every log line, metric and event until the hub has
 * acknowledged it. Rows are ordered by sequence number, never by the clock. A byte cap and a free-disk
 * floor bound it; when full, the oldest rows of the lowest class go first and the drops are counted and
 * themselves reported. A full disk never throws into the agent or the apps.
 */

// Lower classes are dropped first; the classes are part of the telemetry wire.
export { CLASS, CLASS_NAMES, type RecordClass } from '../../shared/protocol/telemetry-wire.js';

export type RecordKind = 'log' | 'metric' | 'event';

export interface NewRecord {
  kind: RecordKind;
  cls: RecordClass;
  /** Service or container for logs and container metrics, the event type for events, the metric name. */
  source: string;
  /** The log line, the metric value and labels (JSON), the event data (JSON). */
  body: string;
  /** The vessel's wall clock, for information only: order comes from seq. */
  ts?: number;
}

export interface OutboxRecord extends Required<NewRecord> {
  seq: number;
  bootId: string;
}

// A log line longer than this is cut with a marker: one runaway line must not wedge a batch.
export const MAX_LINE_BYTES = 16 * 1024;
// 1 GiB holds weeks of a busy ship's logs at typical rates; set per vessel in the agent config.
export const DEFAULT_CAP_BYTES = 1024 * 1024 * 1024;
// Keep this much disk free for the apps and the OS whatever the cap says.
export const DEFAULT_FREE_DISK_FLOOR_BYTES = 512 * 1024 * 1024;
// Shipped log lines kept on board for `tender logs` (a few days of a busy ship), within the cap.
const SHIPPED_KEEP_BYTES = 64 * 1024 * 1024;
// Per-row overhead in SQLite besides the body (keys, columns, index entry), for the byte accounting.
const ROW_OVERHEAD_BYTES = 48;
// Re-read free disk space at most this often; statfs is cheap but not free at 100k rows/s.
const DISK_CHECK_EVERY_MS = 5_000;

const MIGRATIONS: Migration[] = [
  {
    id: 1,
    name: 'outbox',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        cls INTEGER NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        body TEXT NOT NULL,
        ts INTEGER NOT NULL,
        boot_id TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        -- Log lines the hub has acknowledged stay a while for tender logs on board; they go first.
        shipped INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX records_cls_seq ON records (shipped, cls, seq);
      CREATE TABLE drops (cls INTEGER PRIMARY KEY, records INTEGER NOT NULL, bytes INTEGER NOT NULL);
      CREATE TABLE dead_letter (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, reason TEXT NOT NULL,
        first_seq INTEGER, last_seq INTEGER, records INTEGER NOT NULL);
      CREATE TABLE cursors (container TEXT PRIMARY KEY, ts TEXT NOT NULL, n INTEGER NOT NULL);
    `,
  },
];

export interface OutboxOptions {
  path: string;
  bootId: string;
  capBytes?: number;
  freeDiskFloorBytes?: number;
  log?: Logger;
  /** Test hook for clock jumps: the vessel's clock as the outbox sees it. */
  now?: () => number;
}

export type Outbox = ReturnType<typeof openOutbox>;

/** Open the outbox; a corrupt file is moved aside and a fresh one started, with an event saying so. */
export function openOutbox(opts: OutboxOptions) {
  let db: Db;
  let movedAside: string | undefined;
  try {
    db = openDatabase(opts.path, MIGRATIONS);
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`quick_check: ${String(check)}`);
  } catch (err) {
    if (!existsSync(opts.path)) throw err;
    movedAside = `${opts.path}.corrupt-${Date.now()}`;
    for (const suffix of ['', '-wal', '-shm'])
      if (existsSync(opts.path + suffix)) renameSync(opts.path + suffix, movedAside + suffix);
    opts.log?.error(
      { path: opts.path, movedTo: movedAside, reason: errorMessage(err) },
      'outbox was corrupt; moved aside, starting a fresh one',
    );
    db = openDatabase(opts.path, MIGRATIONS);
  }
  return createOutbox(db, opts, movedAside);
}

export function createOutbox(db: Db, opts: OutboxOptions, movedAside?: string) {
  const now = opts.now ?? Date.now;
  const cap = opts.capBytes ?? DEFAULT_CAP_BYTES;
  const floor = opts.freeDiskFloorBytes ?? DEFAULT_FREE_DISK_FLOOR_BYTES;
  const getMeta = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  const setMeta = db.prepare(
    'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  );
  if (!getMeta.get('epoch')) setMeta.run('epoch', randomBytes(8).toString('hex'));
  if (!getMeta.get('bytes'))
    setMeta.run(
      'bytes',
      String(db.prepare<[], { b: number | null }>('SELECT SUM(bytes) AS b FROM records').get()?.b ?? 0),
    );
  const epoch = getMeta.get('epoch')!.value;
  let bytes = Number(getMeta.get('bytes')!.value);

  const insert = db.prepare(
    'INSERT INTO records (cls, kind, source, body, ts, boot_id, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const oldestOfClass = db.prepare<[number, number], { seq: number; bytes: number }>(
    'SELECT seq, bytes FROM records WHERE shipped = 0 AND cls = ? ORDER BY seq LIMIT ?',
  );
  const deleteUpTo = db.prepare('DELETE FROM records WHERE shipped = 0 AND cls = ? AND seq <= ?');
  const oldestShipped = db.prepare<[number], { seq: number; bytes: number }>(
    'SELECT seq, bytes FROM records WHERE shipped = 1 ORDER BY seq LIMIT ?',
  );
  const deleteShippedUpTo = db.prepare('DELETE FROM records WHERE shipped = 1 AND seq <= ?');
  const shippedBytes = db.prepare<[], { b: number | null }>('SELECT SUM(bytes) AS b FROM records WHERE shipped = 1');
  const markShipped = db.prepare("UPDATE records SET shipped = 1 WHERE seq = ? AND kind = 'log'");
  const addDrops = db.prepare(
    'INSERT INTO drops (cls, records, bytes) VALUES (?, ?, ?) ON CONFLICT(cls) DO ' +
      'UPDATE SET records = records + excluded.records, bytes = bytes + excluded.bytes',
  );
  const deleteSeq = db.prepare('DELETE FROM records WHERE seq = ?');
  const sumBytes = db.prepare<[number], { b: number | null }>('SELECT SUM(bytes) AS b FROM records WHERE seq = ?');
  const byPriority = db.prepare<
    [number, number],
    {
      seq: number;
      cls: RecordClass;
      kind: RecordKind;
      source: string;
      body: string;
      ts: number;
      boot_id: string;
      bytes: number;
    }
  >('SELECT * FROM records WHERE shipped = 0 AND cls >= ? ORDER BY seq LIMIT ?');
  const countByClass = db.prepare<[], { cls: number; n: number; b: number }>(
    'SELECT cls, COUNT(*) AS n, SUM(bytes) AS b FROM records WHERE shipped = 0 GROUP BY cls',
  );
  const dropsAll = db.prepare<[], { cls: number; records: number; bytes: number }>('SELECT * FROM drops');
  const recentLogs = db.prepare<
    [string, string, number],
    { seq: number; source: string; body: string; ts: number; cls: number }
  >(
    "SELECT seq, source, body, ts, cls FROM records WHERE kind = 'log' AND (? = '' " +
      'OR source = ?) ORDER BY seq DESC LIMIT ?',
  );
  const getCursor = db.prepare<[string], { ts: string; n: number }>('SELECT ts, n FROM cursors WHERE container = ?');
  const putCursor = db.prepare(
    'INSERT INTO cursors (container, ts, n) VALUES (?, ?, ?) ON CONFLICT(container) ' +
      'DO UPDATE SET ts = excluded.ts, n = excluded.n',
  );
  const deadLetter = db.prepare(
    'INSERT INTO dead_letter (at, reason, first_seq, last_seq, records) VALUES (?, ?, ?, ?, ?)',
  );

  let lastDiskCheck = 0;
  let diskRoom = Infinity;
  const dir = dirname(opts.path);
  function roomOnDisk(): number {
    const t = Date.now();
    if (t - lastDiskCheck > DISK_CHECK_EVERY_MS) {
      lastDiskCheck = t;
      try {
        const s = statfsSync(dir);
        diskRoom = s.bavail * s.bsize - floor;
      } catch {
        diskRoom = Infinity;
      }
    }
    return diskRoom;
  }

  /** Delete the oldest already-shipped lines until `excess` bytes are freed; returns what is left to free. */
  function dropShipped(excess: number): number {
    while (excess > 0) {
      const rows = oldestShipped.all(500);
      if (rows.length === 0) break;
      let freed = 0;
      let last = 0;
      for (const r of rows) {
        freed += r.bytes;
        last = r.seq;
        if (freed >= excess) break;
      }
      deleteShippedUpTo.run(last);
      bytes -= freed;
      excess -= freed;
    }
    return excess;
  }

  /**
   * Make room for `need` more bytes under the cap and the disk floor: shipped lines go first (they are
   * ashore already), then unshipped rows, oldest first, lowest class first, counted as drops.
   */
  function makeRoom(need: number): void {
    const limit = Math.min(cap, bytes + Math.max(0, roomOnDisk()));
    let excess = dropShipped(bytes + need - limit);
    for (let cls = 0; cls <= CLASS.event && excess > 0; cls++) {
      while (excess > 0) {
        const rows = oldestOfClass.all(cls, 500);
        if (rows.length === 0) break;
        let freed = 0;
        let n = 0;
        let last = 0;
        for (const r of rows) {
          freed += r.bytes;
          n++;
          last = r.seq;
          if (freed >= excess) break;
        }
        deleteUpTo.run(cls, last);
        addDrops.run(cls, n, freed);
        bytes -= freed;
        excess -= freed;
      }
    }
  }

  function clip(body: string): string {
    if (Buffer.byteLength(body) <= MAX_LINE_BYTES) return body;
    const cut = Buffer.from(body)
      .subarray(0, MAX_LINE_BYTES - 64)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
    return `${cut} …[truncated by tender: ${Buffer.byteLength(body)} bytes]`;
  }

  const appendTx = db.transaction((records: NewRecord[], cursor?: { container: string; ts: string; n: number }) => {
    const rows = records.map((r) => ({ ...r, body: clip(r.body) }));
    const need = rows.reduce((a, r) => a + Buffer.byteLength(r.body) + r.source.length + ROW_OVERHEAD_BYTES, 0);
    makeRoom(need);
    let added = 0;
    for (const r of rows) {
      const b = Buffer.byteLength(r.body) + r.source.length + ROW_OVERHEAD_BYTES;
      insert.run(r.cls, r.kind, r.source, r.body, r.ts ?? now(), opts.bootId, b);
      added += b;
    }
    bytes += added;
    setMeta.run('bytes', String(bytes));
    if (cursor) putCursor.run(cursor.container, cursor.ts, cursor.n);
  });

  const api = {
    db,
    epoch,
    movedAside,
    /**
     * Append records (and, with them, a log cursor) in one transaction: committed rows and the cursor
     * survive kill -9 together, so a restarted collector neither loses nor repeats lines.
     */
    append(records: NewRecord[], cursor?: { container: string; ts: string; n: number }): void {
      if (records.length === 0 && !cursor) return;
      try {
        appendTx(records, cursor);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR') {
          // The disk is full: count these as dropped rather than fail the caller.
          try {
            db.transaction(() => {
              for (const r of records) addDrops.run(r.cls, 1, Buffer.byteLength(r.body));
            })();
          } catch {
            /* nothing more we can do without disk */
          }
          opts.log?.warn(
            { reason: errorMessage(err), records: records.length },
            'outbox write failed; records counted as dropped',
          );
          return;
        }
        throw err;
      }
    },
    event(type: string, data: Record<string, unknown>): void {
      api.append([{ kind: 'event', cls: CLASS.event, source: type, body: JSON.stringify(data) }]);
    },
    /** The next batch to ship: events (live) first, then everything else oldest first. */
    nextBatch(maxRecords: number, maxBytes: number): OutboxRecord[] {
      const out: OutboxRecord[] = [];
      const seen = new Set<number>();
      let size = 0;
      const take = (rows: ReturnType<typeof byPriority.all>) => {
        for (const r of rows) {
          if (out.length >= maxRecords || (size + r.bytes > maxBytes && out.length > 0)) return false;
          if (seen.has(r.seq)) continue;
          seen.add(r.seq);
          out.push({
            seq: r.seq,
            cls: r.cls,
            kind: r.kind,
            source: r.source,
            body: r.body,
            ts: r.ts,
            bootId: r.boot_id,
          });
          size += r.bytes;
        }
        return true;
      };
      if (take(byPriority.all(CLASS.event, maxRecords))) take(byPriority.all(0, maxRecords));
      return out.sort((a, b) => a.seq - b.seq);
    },
    /** Forget what the hub acknowledged; log lines stay (shipped) for `tender logs` until room is needed. */
    ack(seqs: number[]): void {
      db.transaction(() => {
        for (const s of seqs) {
          if (markShipped.run(s).changes) continue;
          const b = sumBytes.get(s)?.b ?? 0;
          if (deleteSeq.run(s).changes) bytes -= b;
        }
        const kept = shippedBytes.get()?.b ?? 0;
        if (kept > SHIPPED_KEEP_BYTES) dropShipped(kept - SHIPPED_KEEP_BYTES);
        setMeta.run('bytes', String(bytes));
      })();
    },
    deadLetter(seqs: number[], reason: string): void {
      db.transaction(() => {
        deadLetter.run(Date.now(), reason.slice(0, 1000), Math.min(...seqs), Math.max(...seqs), seqs.length);
        api.ack(seqs);
      })();
    },
    stats() {
      type Counts = Record<(typeof CLASS_NAMES)[number], { records: number; bytes: number }>;
      const byClass = Object.fromEntries(CLASS_NAMES.map((n) => [n, { records: 0, bytes: 0 }])) as Counts;
      for (const r of countByClass.all()) byClass[CLASS_NAMES[r.cls]!] = { records: r.n, bytes: r.b };
      const drops = Object.fromEntries(CLASS_NAMES.map((n) => [n, { records: 0, bytes: 0 }])) as Counts;
      for (const d of dropsAll.all()) drops[CLASS_NAMES[d.cls]!] = { records: d.records, bytes: d.bytes };
      const records = Object.values(byClass).reduce((a, c) => a + c.records, 0);
      return { records, bytes, capBytes: cap, byClass, drops };
    },
    recentLogs(service: string | undefined, limit: number) {
      return recentLogs.all(service ?? '', service ?? '', limit).reverse();
    },
    cursor(container: string): { ts: string; n: number } | undefined {
      return getCursor.get(container);
    },
    close(): void {
      db.close();
    },
  };
  return api;
}
