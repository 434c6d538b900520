import type { Db } from '../../shared/sqlite.js';
import { className, type TelemetryBatch, type WireRecord } from '../../shared/protocol/telemetry-wire.js';

// Metrics are kept this long; logs and events until an operator prunes them (they are the record).
export const METRICS_RETENTION_MS = 30 * 24 * 3600 * 1000;

export type TelemetryStore = ReturnType<typeof createTelemetryStore>;

/**
 * Telemetry ashore. Every record is keyed by (vessel, outbox epoch, seq) and inserted with OR IGNORE, so a
 * batch retried after a lost acknowledgement stores nothing twice. Old or future vessel timestamps are
 * stored as they are, beside the time received.
 */
export function createTelemetryStore(db: Db) {
  const insLog = db.prepare(
    'INSERT OR IGNORE INTO logs (vessel_id, epoch, seq, service, level, line, ts_vessel, ts_received, boot_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insFts = db.prepare('INSERT INTO logs_fts (rowid, line) VALUES (?, ?)');
  const insEvent = db.prepare(
    'INSERT OR IGNORE INTO events (vessel_id, epoch, seq, type, data, ts_vessel, ts_received) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insMetric = db.prepare(
    'INSERT OR IGNORE INTO metrics (vessel_id, epoch, seq, name, labels, value, ts_vessel, ts_received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const upsertVt = db.prepare(
    `INSERT INTO vessel_telemetry (vessel_id, backlog, drops, records_received, bytes_received, last_batch_at) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT(vessel_id) DO UPDATE SET backlog = excluded.backlog, drops = excluded.drops,
       records_received = records_received + excluded.records_received, bytes_received = bytes_received + excluded.bytes_received, last_batch_at = excluded.last_batch_at`,
  );
  const pruneMetrics = db.prepare('DELETE FROM metrics WHERE ts_received < ?');
  const vt = db.prepare<
    [string],
    { backlog: number; drops: string; records_received: number; bytes_received: number; last_batch_at: number | null }
  >('SELECT * FROM vessel_telemetry WHERE vessel_id = ?');
  const allVt = db.prepare<[], { name: string; backlog: number; drops: string; bytes_received: number }>(
    'SELECT v.name, t.backlog, t.drops, t.bytes_received FROM vessel_telemetry t JOIN vessels v ON v.id = t.vessel_id',
  );
  let lastPrune = 0;

  return {
    ingest(
      vesselId: string,
      batch: TelemetryBatch,
      records: WireRecord[],
      wireBytes: number,
      now = Date.now(),
    ): { stored: number; duplicates: number } {
      return db.transaction(() => {
        let stored = 0;
        for (const r of records) {
          let changed: number;
          if (r.kind === 'log') {
            const res = insLog.run(
              vesselId,
              batch.epoch,
              r.seq,
              r.source,
              className(r.cls),
              r.body,
              r.ts,
              now,
              r.bootId,
            );
            changed = res.changes;
            if (changed) insFts.run(res.lastInsertRowid, r.body);
          } else if (r.kind === 'event') {
            changed = insEvent.run(vesselId, batch.epoch, r.seq, r.source, r.body, r.ts, now).changes;
          } else {
            const m = safeMetric(r.body);
            changed = insMetric.run(
              vesselId,
              batch.epoch,
              r.seq,
              r.source,
              JSON.stringify(m.l),
              m.v,
              r.ts,
              now,
            ).changes;
          }
          stored += changed;
        }
        upsertVt.run(vesselId, batch.backlog, JSON.stringify(batch.drops), stored, wireBytes, now);
        if (now - lastPrune > 3600_000) {
          lastPrune = now;
          pruneMetrics.run(now - METRICS_RETENTION_MS);
        }
        return { stored, duplicates: records.length - stored };
      })();
    },
    vesselTelemetry(vesselId: string) {
      const r = vt.get(vesselId);
      return r
        ? {
            backlog: r.backlog,
            drops: JSON.parse(r.drops) as Record<string, { records: number; bytes: number }>,
            recordsReceived: r.records_received,
            bytesReceived: r.bytes_received,
            lastBatchAt: r.last_batch_at,
          }
        : undefined;
    },
    fleet() {
      return allVt.all().map((r) => ({
        vessel: r.name,
        backlog: r.backlog,
        drops: JSON.parse(r.drops) as Record<string, { records: number }>,
        bytesReceived: r.bytes_received,
      }));
    },
    logs(vesselId: string, q: { service?: string; since?: number; until?: number; grep?: string; limit: number }) {
      const where = ['l.vessel_id = ?'];
      const args: (string | number)[] = [vesselId];
      if (q.service) {
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
      if (q.grep) {
        from = 'logs l JOIN logs_fts f ON f.rowid = l.id';
        where.push('logs_fts MATCH ?');
        // Each word as a quoted phrase: user text never becomes FTS syntax.
        args.push(
          q.grep
            .split(/\s+/)
            .filter(Boolean)
            .map((w) => `"${w.replace(/"/g, '""')}"`)
            .join(' '),
        );
      }
      args.push(q.limit);
      const rows = db
        .prepare<
          (string | number)[],
          {
            seq: number;
            service: string;
            level: string;
            line: string;
            ts_vessel: number;
            ts_received: number;
            epoch: string;
          }
        >(
          `SELECT l.seq, l.service, l.level, l.line, l.ts_vessel, l.ts_received, l.epoch FROM ${from} WHERE ${where.join(' AND ')} ORDER BY l.ts_vessel DESC, l.seq DESC LIMIT ?`,
        )
        .all(...args);
      return rows.reverse().map((r) => ({
        service: r.service,
        level: r.level,
        line: r.line,
        at: new Date(r.ts_vessel).toISOString(),
        receivedAt: new Date(r.ts_received).toISOString(),
        seq: r.seq,
      }));
    },
    events(vesselId: string, limit: number) {
      return db
        .prepare<[string, number], { type: string; data: string; ts_vessel: number; ts_received: number; seq: number }>(
          'SELECT type, data, ts_vessel, ts_received, seq FROM events WHERE vessel_id = ? ORDER BY id DESC LIMIT ?',
        )
        .all(vesselId, limit)
        .map((e) => ({
          type: e.type,
          data: JSON.parse(e.data) as unknown,
          at: new Date(e.ts_vessel).toISOString(),
          receivedAt: new Date(e.ts_received).toISOString(),
          seq: e.seq,
        }));
    },
    metrics(vesselId: string, name: string, since: number, limit: number) {
      return db
        .prepare<[string, string, number, number], { labels: string; value: number; ts_vessel: number }>(
          'SELECT labels, value, ts_vessel FROM metrics WHERE vessel_id = ? AND name = ? AND ts_vessel >= ? ORDER BY ts_vessel LIMIT ?',
        )
        .all(vesselId, name, since, limit)
        .map((m) => ({
          labels: JSON.parse(m.labels) as Record<string, string>,
          value: m.value,
          at: new Date(m.ts_vessel).toISOString(),
        }));
    },
  };
}

function safeMetric(body: string): { v: number; l: Record<string, string> } {
  try {
    const m = JSON.parse(body) as { v?: unknown; l?: unknown };
    const v = typeof m.v === 'number' && Number.isFinite(m.v) ? m.v : 0;
    const l = m.l && typeof m.l === 'object' ? (m.l as Record<string, string>) : {};
    return { v, l };
  } catch {
    return { v: 0, l: {} };
  }
}
