import type { Db } from '../../../shared/sqlite.js';
import type {
  LogRecord,
  TelemetryBatchMeta,
  TelemetryCounters,
  TelemetryRecord,
  TelemetryRecords,
} from '../hub-store.js';
import { cachedStatement, parseJson } from './sql.js';

interface CounterRow {
  backlog: number;
  drops: string;
  records_received: number;
  bytes_received: number;
  last_batch_at: number | null;
}
const countersFromRow = (r: CounterRow): TelemetryCounters => ({
  backlog: r.backlog,
  drops: JSON.parse(r.drops) as TelemetryCounters['drops'],
  recordsReceived: r.records_received,
  bytesReceived: r.bytes_received,
  lastBatchAt: r.last_batch_at,
});

/** Each word a quoted FTS5 phrase: user text never becomes query syntax (NUL cannot reach SQLite). */
export function ftsWords(text: string): string | undefined {
  const words = text
    .replace(/\0/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => `"${w.replace(/"/g, '""')}"`);
  return words.length ? words.join(' ') : undefined;
}

/**
 * Telemetry ashore. Records are keyed by (vessel, outbox epoch, seq) and inserted with OR IGNORE, so a
 * batch retried after a lost acknowledgement stores nothing twice. Vessel timestamps are stored as they
 * are, beside the time received.
 */
export function sqliteTelemetry(db: Db): TelemetryRecords {
  const insLog = db.prepare(
    `INSERT OR IGNORE INTO logs (vessel_id, epoch, seq, service, level, line, ts_vessel, ts_received, boot_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insFts = db.prepare('INSERT INTO logs_fts (rowid, line) VALUES (?, ?)');
  const insEvent = db.prepare(
    `INSERT OR IGNORE INTO events (vessel_id, epoch, seq, type, data, ts_vessel, ts_received)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const insMetric = db.prepare(
    `INSERT OR IGNORE INTO metrics (vessel_id, epoch, seq, name, labels, value, ts_vessel, ts_received)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const upsertCounters = db.prepare(
    `INSERT INTO vessel_telemetry (vessel_id, backlog, drops, records_received, bytes_received, last_batch_at)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT(vessel_id) DO UPDATE SET backlog = excluded.backlog, drops = excluded.drops,
       records_received = records_received + excluded.records_received,
       bytes_received = bytes_received + excluded.bytes_received, last_batch_at = excluded.last_batch_at`,
  );
  const counters = db.prepare<[string], CounterRow>('SELECT * FROM vessel_telemetry WHERE vessel_id = ?');
  const fleet = db.prepare<[], CounterRow & { vessel_id: string; name: string }>(
    'SELECT t.*, v.name FROM vessel_telemetry t JOIN vessels v ON v.id = t.vessel_id ORDER BY v.name',
  );
  const events = db.prepare<
    [string, number, number],
    { id: number; epoch: string; seq: number; type: string; data: string; ts_vessel: number; ts_received: number }
  >('SELECT * FROM events WHERE vessel_id = ? AND id < ? ORDER BY id DESC LIMIT ?');
  const metrics = db.prepare<[string, string, number, number], { labels: string; value: number; ts_vessel: number }>(
    'SELECT labels, value, ts_vessel FROM metrics WHERE vessel_id = ? AND name = ? ' +
      'AND ts_vessel >= ? ORDER BY ts_vessel, id LIMIT ?',
  );
  const prune = db.prepare('DELETE FROM metrics WHERE ts_received < ?');

  const ingest = db.transaction(
    (vesselId: string, batch: TelemetryBatchMeta, records: TelemetryRecord[], wireBytes: number, now: number) => {
      let stored = 0;
      for (const r of records) {
        if (r.kind === 'log') {
          const res = insLog.run(vesselId, batch.epoch, r.seq, r.service, r.level, r.line, r.ts, now, r.bootId);
          if (res.changes) insFts.run(res.lastInsertRowid, r.line);
          stored += res.changes;
        } else if (r.kind === 'event') {
          stored += insEvent.run(vesselId, batch.epoch, r.seq, r.type, r.data, r.ts, now).changes;
        } else {
          const labels = JSON.stringify(r.labels);
          stored += insMetric.run(vesselId, batch.epoch, r.seq, r.name, labels, r.value, r.ts, now).changes;
        }
      }
      upsertCounters.run(vesselId, batch.backlog, JSON.stringify(batch.drops), stored, wireBytes, now);
      return { stored, duplicates: records.length - stored };
    },
  );

  return {
    async ingest(vesselId, batch, records, wireBytes, now) {
      return ingest(vesselId, batch, records, wireBytes, now);
    },
    async logs(vesselId, q) {
      const where = ['l.vessel_id = ?'];
      const args: (string | number)[] = [vesselId];
      if (q.service !== undefined) {
        where.push('l.service = ?');
        args.push(q.service);
      }
      if (q.since !== undefined) {
        where.push('l.ts_vessel >= ?');
        args.push(q.since);
      }
      if (q.until !== undefined) {
        where.push('l.ts_vessel < ?');
        args.push(q.until);
      }
      let from = 'logs l';
      const match = q.grep === undefined ? undefined : ftsWords(q.grep);
      if (match !== undefined) {
        from = 'logs l JOIN logs_fts f ON f.rowid = l.id';
        where.push('logs_fts MATCH ?');
        args.push(match);
      }
      args.push(q.limit);
      const rows = cachedStatement<{
        epoch: string;
        seq: number;
        service: string;
        level: string;
        line: string;
        ts_vessel: number;
        ts_received: number;
        boot_id: string;
      }>(
        db,
        `SELECT l.epoch, l.seq, l.service, l.level, l.line, l.ts_vessel, l.ts_received, l.boot_id FROM ${from}
         WHERE ${where.join(' AND ')} ORDER BY l.ts_vessel DESC, l.seq DESC LIMIT ?`,
      ).all(...args);
      return rows.reverse().map((r): LogRecord => ({
        epoch: r.epoch,
        seq: r.seq,
        service: r.service,
        level: r.level,
        line: r.line,
        at: r.ts_vessel,
        receivedAt: r.ts_received,
        bootId: r.boot_id,
      }));
    },
    async events(vesselId, q) {
      return events.all(vesselId, q.before ?? Number.MAX_SAFE_INTEGER, q.limit).map((e) => ({
        id: e.id,
        epoch: e.epoch,
        seq: e.seq,
        type: e.type,
        data: parseJson(e.data),
        at: e.ts_vessel,
        receivedAt: e.ts_received,
      }));
    },
    async metrics(vesselId, q) {
      return metrics.all(vesselId, q.name, q.since, q.limit).map((m) => ({
        labels: parseJson(m.labels) as Record<string, string>,
        value: m.value,
        at: m.ts_vessel,
      }));
    },
    async counters(vesselId) {
      const r = counters.get(vesselId);
      return r && countersFromRow(r);
    },
    async fleetCounters() {
      return fleet.all().map((r) => ({ ...countersFromRow(r), vesselId: r.vessel_id, vessel: r.name }));
    },
    async pruneMetrics(receivedBefore) {
      return prune.run(receivedBefore).changes;
    },
  };
}
