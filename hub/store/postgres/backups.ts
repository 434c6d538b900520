import {
  HubStoreError,
  type BackupAshoreSummary,
  type BackupRecords,
  type BackupStateRecord,
  type HubChunkStore,
} from '../hub-store.js';
import type { PgDb, Queryable } from './pg.js';

interface Row {
  vessel_id: string;
  id: string;
  policy: string;
  policy_sequence: number;
  method: string;
  started_at: number;
  finished_at: number;
  bytes: number;
  sha256: string;
  raw_bytes: number;
  raw_sha256: string | null;
  seal_key_id: string | null;
  seal_header: string | null;
  chunks: Buffer;
  chunk_count: number;
  received_at: number;
}

const digestsOf = (blob: Buffer): string[] => {
  const out: string[] = [];
  for (let i = 0; i < blob.byteLength; i += 32) out.push(blob.subarray(i, i + 32).toString('hex'));
  return out;
};
const summary = (r: Omit<Row, 'chunks'>): BackupAshoreSummary => ({
  vesselId: r.vessel_id,
  id: r.id,
  policy: r.policy,
  policySequence: r.policy_sequence,
  method: r.method,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  bytes: r.bytes,
  sha256: r.sha256,
  rawBytes: r.raw_bytes,
  rawSha256: r.raw_sha256,
  seal: r.seal_key_id !== null ? { keyId: r.seal_key_id, header: r.seal_header ?? '' } : null,
  chunkCount: r.chunk_count,
  receivedAt: r.received_at,
});

const COLUMNS =
  'vessel_id, id, policy, policy_sequence, method, started_at, finished_at, bytes, sha256, raw_bytes, raw_sha256, ' +
  'seal_key_id, seal_header, chunk_count, received_at';
const NAMED = 'SELECT EXISTS (SELECT 1 FROM backup_chunk_refs WHERE digest = ?) AS n';

/**
 * Backups ashore on PostgreSQL: one row per backup with its chunk list, a reference row per (backup,
 * chunk) for the hub's retention, and what vessels reported of their runs (row locks, not the store's
 * write lock: backup events arrive with telemetry).
 */
export function pgBackups(db: PgDb, chunks: HubChunkStore): BackupRecords {
  const isNamed = async (q: Queryable, digest: Buffer) => (await q.get<{ n: boolean }>(NAMED, [digest]))!.n;
  return {
    async put(b, now) {
      const absent = await chunks.missing([...new Set(b.chunks)]);
      if (absent.length)
        throw new HubStoreError(
          `backup ${b.id}: the hub lacks ${absent.length} of its chunks (first ` +
            `${absent[0]!.slice(0, 12)}); upload them first`,
          'chunk_missing',
          409,
        );
      const blob = Buffer.concat(b.chunks.map((d) => Buffer.from(d, 'hex')));
      return db.tx(
        async (q) => {
          const held = await q.get<Row>('SELECT * FROM backups_ashore WHERE vessel_id = ? AND id = ?', [
            b.vesselId,
            b.id,
          ]);
          if (held) {
            if (held.sha256 === b.sha256 && Buffer.compare(held.chunks, blob) === 0) return { created: false };
            throw new HubStoreError(`backup ${b.id} exists ashore with other contents`, 'exists', 409);
          }
          await q.run(
            `INSERT INTO backups_ashore (vessel_id, id, policy, policy_sequence, method, started_at, finished_at,
               bytes, sha256, raw_bytes, raw_sha256, seal_key_id, seal_header, chunks, chunk_count, received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            [
              b.vesselId,
              b.id,
              b.policy,
              b.policySequence,
              b.method,
              b.startedAt,
              b.finishedAt,
              b.bytes,
              b.sha256,
              b.rawBytes,
              b.rawSha256,
              b.seal?.keyId ?? null,
              b.seal?.header ?? null,
              blob,
              b.chunks.length,
              now,
            ],
          );
          const distinct = [...new Set(b.chunks)].map((d) => Buffer.from(d, 'hex'));
          if (distinct.length)
            await q.run(
              `INSERT INTO backup_chunk_refs (vessel_id, backup_id, digest)
               SELECT ?::text, ?::text, d FROM unnest(?::bytea[]) AS d ON CONFLICT DO NOTHING`,
              [b.vesselId, b.id, distinct],
            );
          return { created: true };
        },
        { lock: true },
      );
    },
    async get(vesselId, id) {
      const r = await db.get<Row>('SELECT * FROM backups_ashore WHERE vessel_id = ? AND id = ?', [vesselId, id]);
      if (!r) return undefined;
      const { chunkCount: _count, ...rest } = summary(r);
      return { ...rest, chunks: digestsOf(r.chunks) };
    },
    async list(vesselId, q) {
      const rows = q.policy
        ? await db.all<Omit<Row, 'chunks'>>(
            `SELECT ${COLUMNS} FROM backups_ashore WHERE vessel_id = ? AND policy = ?
             ORDER BY started_at DESC, id DESC LIMIT ?`,
            [vesselId, q.policy, q.limit],
          )
        : await db.all<Omit<Row, 'chunks'>>(
            `SELECT ${COLUMNS} FROM backups_ashore WHERE vessel_id = ? ORDER BY started_at DESC, id DESC LIMIT ?`,
            [vesselId, q.limit],
          );
      return rows.map(summary);
    },
    async prune(vesselId, policy, keep, now) {
      const orphans = await db.tx(
        async (q) => {
          const removed: string[] = [];
          const maybe = new Map<string, Buffer>();
          const rows = await q.all<{ id: string; started_at: number }>(
            `SELECT id, started_at FROM backups_ashore WHERE vessel_id = ? AND policy = ?
             ORDER BY started_at DESC, id DESC`,
            [vesselId, policy],
          );
          for (const [i, r] of rows.entries()) {
            if (i === 0) continue;
            if (i < keep.count && now - r.started_at <= keep.maxAgeMs) continue;
            const refs = await q.all<{ digest: Buffer }>(
              'DELETE FROM backup_chunk_refs WHERE vessel_id = ? AND backup_id = ? RETURNING digest',
              [vesselId, r.id],
            );
            for (const { digest } of refs) maybe.set(digest.toString('hex'), digest);
            await q.run('DELETE FROM backups_ashore WHERE vessel_id = ? AND id = ?', [vesselId, r.id]);
            removed.push(r.id);
          }
          const unnamed: Buffer[] = [];
          for (const d of maybe.values()) if (!(await isNamed(q, d))) unnamed.push(d);
          return { removed, unnamed };
        },
        { lock: true },
      );
      let chunksRemoved = 0;
      for (const d of orphans.unnamed) {
        // Checked again just before: a backup recorded since the transaction may name it now.
        if (await isNamed(db, d)) continue;
        await chunks.remove(d.toString('hex'));
        chunksRemoved++;
      }
      return { removed: orphans.removed, chunksRemoved };
    },
    async noteResult(vesselId, r) {
      await db.tx(async (q) => {
        await q.run('INSERT INTO vessel_backup_state (vessel_id, policy) VALUES (?, ?) ON CONFLICT DO NOTHING', [
          vesselId,
          r.policy,
        ]);
        // The row lock orders two hubs noting results of one vessel and policy.
        const s = await q.get<{ last_good_at: number | null }>(
          'SELECT last_good_at FROM vessel_backup_state WHERE vessel_id = ? AND policy = ? FOR UPDATE',
          [vesselId, r.policy],
        );
        if (r.result === 'ok') {
          if (r.id)
            await q.run(
              `UPDATE vessel_backup_state SET last_good_id = ?, last_good_at = ? WHERE vessel_id = ? AND policy = ?
                 AND (last_good_at IS NULL OR last_good_at < ?)`,
              [r.id, r.at, vesselId, r.policy, r.at],
            );
          // A catch-up run after missed slots does not clear the missed alarm; the next run on time does.
          await q.run(
            `UPDATE vessel_backup_state SET alarm_kind = NULL, alarm_reason = NULL, alarm_since = NULL
             WHERE vessel_id = ? AND policy = ? AND alarm_since <= ? AND (?::int = 1 OR alarm_kind != 'missed')`,
            [vesselId, r.policy, r.at, r.catchUp ? 0 : 1],
          );
          return;
        }
        // A result older than the last good backup is history, not an alarm.
        if (s?.last_good_at != null && s.last_good_at > r.at) return;
        await q.run(
          `UPDATE vessel_backup_state SET alarm_kind = ?, alarm_reason = ?,
             alarm_since = CASE WHEN alarm_kind = ? THEN alarm_since ELSE ?::bigint END
           WHERE vessel_id = ? AND policy = ?`,
          [r.result, (r.reason ?? '').slice(0, 1000).replace(/\0/g, '\uFFFD'), r.result, r.at, vesselId, r.policy],
        );
      });
    },
    async states() {
      const rows = await db.all<{
        vessel_id: string;
        vessel: string;
        policy: string;
        last_good_id: string | null;
        last_good_at: number | null;
        alarm_kind: string | null;
        alarm_reason: string | null;
        alarm_since: number | null;
        ashore_id: string | null;
        ashore_at: number | null;
      }>(
        `WITH k AS (
           SELECT vessel_id, policy FROM vessel_backup_state
           UNION SELECT vessel_id, policy FROM backups_ashore
         ), a AS (
           SELECT DISTINCT ON (vessel_id, policy) vessel_id, policy, id AS ashore_id, started_at AS ashore_at
           FROM backups_ashore ORDER BY vessel_id, policy, started_at DESC, id DESC
         )
         SELECT k.vessel_id, v.name AS vessel, k.policy, s.last_good_id, s.last_good_at, s.alarm_kind,
           s.alarm_reason, s.alarm_since, a.ashore_id, a.ashore_at
         FROM k JOIN vessels v ON v.id = k.vessel_id
           LEFT JOIN vessel_backup_state s ON s.vessel_id = k.vessel_id AND s.policy = k.policy
           LEFT JOIN a ON a.vessel_id = k.vessel_id AND a.policy = k.policy
         WHERE v.revoked_at IS NULL
         ORDER BY v.name, k.policy`,
      );
      return rows.map((r): BackupStateRecord => ({
        vesselId: r.vessel_id,
        vessel: r.vessel,
        policy: r.policy,
        lastGood:
          r.last_good_id !== null && r.last_good_at !== null ? { id: r.last_good_id, at: r.last_good_at } : null,
        lastAshore: r.ashore_id !== null && r.ashore_at !== null ? { id: r.ashore_id, at: r.ashore_at } : null,
        alarm:
          r.alarm_kind !== null
            ? { kind: r.alarm_kind, reason: r.alarm_reason ?? '', since: r.alarm_since ?? 0 }
            : null,
      }));
    },
  };
}
