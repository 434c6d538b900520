import type { LogRecord, TelemetryCounters, TelemetryRecord, TelemetryRecords } from '../hub-store.js';
import { noNul, parseJson, type PgDb } from './pg.js';

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

// One statement per kind and batch: the records go as parallel arrays through unnest, and the unique
// key (vessel, epoch, seq) with ON CONFLICT DO NOTHING drops what any hub stored already. The count of
// rows inserted is what was stored.
const INSERT_LOGS = `INSERT INTO logs (vessel_id, epoch, seq, service, level, line, ts_vessel, ts_received, boot_id)
  SELECT ?::text, ?::text, u.seq, u.service, u.level, u.line, u.ts, ?::bigint, u.boot
  FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[])
    AS u(seq, service, level, line, ts, boot)
  ON CONFLICT (vessel_id, epoch, seq) DO NOTHING`;
const INSERT_EVENTS = `INSERT INTO events (vessel_id, epoch, seq, type, data, ts_vessel, ts_received)
  SELECT ?::text, ?::text, u.seq, u.type, u.data, u.ts, ?::bigint
  FROM unnest(?::bigint[], ?::text[], ?::text[], ?::bigint[]) AS u(seq, type, data, ts)
  ON CONFLICT (vessel_id, epoch, seq) DO NOTHING`;
const INSERT_METRICS = `INSERT INTO metrics (vessel_id, epoch, seq, name, labels, value, ts_vessel, ts_received)
  SELECT ?::text, ?::text, u.seq, u.name, u.labels, u.value, u.ts, ?::bigint
  FROM unnest(?::bigint[], ?::text[], ?::text[], ?::float8[], ?::bigint[]) AS u(seq, name, labels, value, ts)
  ON CONFLICT (vessel_id, epoch, seq) DO NOTHING`;
const UPSERT_COUNTERS = `INSERT INTO vessel_telemetry
    (vessel_id, backlog, drops, records_received, bytes_received, last_batch_at)
  VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (vessel_id) DO UPDATE SET backlog = excluded.backlog, drops = excluded.drops,
    records_received = vessel_telemetry.records_received + excluded.records_received,
    bytes_received = vessel_telemetry.bytes_received + excluded.bytes_received,
    last_batch_at = excluded.last_batch_at`;

/** The words of a search, or undefined when there are none (NUL is a space, as on SQLite). */
const searchText = (text: string): string | undefined => {
  const t = text.replace(/\0/g, ' ').trim();
  return t ? t : undefined;
};

/**
 * Telemetry ashore on PostgreSQL: exactly once across hubs by the unique keys, counters grown by the
 * rows actually inserted in the same transaction; the log search is the generated tsvector (GIN index)
 * queried with plainto_tsquery, so user text is words and never query syntax.
 */
export function pgTelemetry(db: PgDb): TelemetryRecords {
  return {
    async ingest(vesselId, batch, records, wireBytes, now) {
      const logs = records.filter((r): r is Extract<TelemetryRecord, { kind: 'log' }> => r.kind === 'log');
      const events = records.filter((r): r is Extract<TelemetryRecord, { kind: 'event' }> => r.kind === 'event');
      const metrics = records.filter((r): r is Extract<TelemetryRecord, { kind: 'metric' }> => r.kind === 'metric');
      const epoch = noNul(batch.epoch);
      return db.tx(async (q) => {
        let stored = 0;
        if (logs.length)
          stored += await q.run(INSERT_LOGS, [
            vesselId,
            epoch,
            now,
            logs.map((r) => r.seq),
            logs.map((r) => noNul(r.service)),
            logs.map((r) => noNul(r.level)),
            logs.map((r) => noNul(r.line)),
            logs.map((r) => r.ts),
            logs.map((r) => noNul(r.bootId)),
          ]);
        if (events.length)
          stored += await q.run(INSERT_EVENTS, [
            vesselId,
            epoch,
            now,
            events.map((r) => r.seq),
            events.map((r) => noNul(r.type)),
            events.map((r) => noNul(r.data)),
            events.map((r) => r.ts),
          ]);
        if (metrics.length)
          stored += await q.run(INSERT_METRICS, [
            vesselId,
            epoch,
            now,
            metrics.map((r) => r.seq),
            metrics.map((r) => noNul(r.name)),
            metrics.map((r) => JSON.stringify(r.labels)),
            metrics.map((r) => r.value),
            metrics.map((r) => r.ts),
          ]);
        await q.run(UPSERT_COUNTERS, [vesselId, batch.backlog, JSON.stringify(batch.drops), stored, wireBytes, now]);
        return { stored, duplicates: records.length - stored };
      });
    },
    async logs(vesselId, q) {
      const where = ['vessel_id = ?'];
      const args: (string | number)[] = [vesselId];
      if (q.service !== undefined) {
        where.push('service = ?');
        args.push(noNul(q.service));
      }
      if (q.since !== undefined) {
        where.push('ts_vessel >= ?');
        args.push(q.since);
      }
      if (q.until !== undefined) {
        where.push('ts_vessel < ?');
        args.push(q.until);
      }
      const words = q.grep === undefined ? undefined : searchText(q.grep);
      if (words !== undefined) {
        where.push("words @@ plainto_tsquery('simple', ?)");
        args.push(words);
      }
      args.push(q.limit);
      const rows = await db.all<{
        epoch: string;
        seq: number;
        service: string;
        level: string;
        line: string;
        ts_vessel: number;
        ts_received: number;
        boot_id: string;
      }>(
        `SELECT epoch, seq, service, level, line, ts_vessel, ts_received, boot_id FROM logs
         WHERE ${where.join(' AND ')} ORDER BY ts_vessel DESC, seq DESC LIMIT ?`,
        args,
      );
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
      const rows = await db.all<{
        id: number;
        epoch: string;
        seq: number;
        type: string;
        data: string;
        ts_vessel: number;
        ts_received: number;
      }>('SELECT * FROM events WHERE vessel_id = ? AND id < ? ORDER BY id DESC LIMIT ?', [
        vesselId,
        q.before ?? Number.MAX_SAFE_INTEGER,
        q.limit,
      ]);
      return rows.map((e) => ({
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
      const rows = await db.all<{ labels: string; value: number; ts_vessel: number }>(
        'SELECT labels, value, ts_vessel FROM metrics WHERE vessel_id = ? AND name = ? AND ts_vessel >= ? ' +
          'ORDER BY ts_vessel, id LIMIT ?',
        [vesselId, q.name, q.since, q.limit],
      );
      return rows.map((m) => ({
        labels: parseJson(m.labels) as Record<string, string>,
        value: m.value,
        at: m.ts_vessel,
      }));
    },
    async counters(vesselId) {
      const r = await db.get<CounterRow>('SELECT * FROM vessel_telemetry WHERE vessel_id = ?', [vesselId]);
      return r && countersFromRow(r);
    },
    async fleetCounters() {
      const rows = await db.all<CounterRow & { vessel_id: string; name: string }>(
        'SELECT t.*, v.name FROM vessel_telemetry t JOIN vessels v ON v.id = t.vessel_id ORDER BY v.name',
      );
      return rows.map((r) => ({ ...countersFromRow(r), vesselId: r.vessel_id, vessel: r.name }));
    },
    async pruneMetrics(receivedBefore) {
      return db.run('DELETE FROM metrics WHERE ts_received < ?', [receivedBefore]);
    },
  };
}
