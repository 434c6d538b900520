import type { Db } from '../../../shared/sqlite.js';
import {
  HubStoreError,
  type BackupAshoreSummary,
  type BackupRecords,
  type BackupStateRecord,
  type HubChunkStore,
} from '../hub-store.js';

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

/**
 * Backups ashore: one row per backup with its chunk list, a reference row per (backup, chunk) so the
 * hub's retention knows which chunks nothing names any more, and what vessels reported of their runs.
 */
export function sqliteBackups(db: Db, chunks: HubChunkStore): BackupRecords {
  const byId = db.prepare<[string, string], Row>('SELECT * FROM backups_ashore WHERE vessel_id = ? AND id = ?');
  const insert = db.prepare(
    `INSERT INTO backups_ashore (vessel_id, id, policy, policy_sequence, method, started_at, finished_at, bytes,
       sha256, raw_bytes, raw_sha256, seal_key_id, seal_header, chunks, chunk_count, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const ref = db.prepare('INSERT OR IGNORE INTO backup_chunk_refs (vessel_id, backup_id, digest) VALUES (?, ?, ?)');
  const list = db.prepare<[string, number], Omit<Row, 'chunks'>>(
    `SELECT ${COLUMNS} FROM backups_ashore WHERE vessel_id = ? ORDER BY started_at DESC, id DESC LIMIT ?`,
  );
  const listPolicy = db.prepare<[string, string, number], Omit<Row, 'chunks'>>(
    `SELECT ${COLUMNS} FROM backups_ashore WHERE vessel_id = ? AND policy = ? ORDER ` +
      `BY started_at DESC, id DESC LIMIT ?`,
  );
  const ofPolicy = db.prepare<[string, string], { id: string; started_at: number }>(
    'SELECT id, started_at FROM backups_ashore WHERE vessel_id = ? AND policy = ? ORDER BY started_at DESC, id DESC',
  );
  const refsOf = db.prepare<[string, string], { digest: Buffer }>(
    'SELECT digest FROM backup_chunk_refs WHERE vessel_id = ? AND backup_id = ?',
  );
  const dropRefs = db.prepare('DELETE FROM backup_chunk_refs WHERE vessel_id = ? AND backup_id = ?');
  const dropBackup = db.prepare('DELETE FROM backups_ashore WHERE vessel_id = ? AND id = ?');
  const named = db.prepare<[Buffer], { n: number }>(
    'SELECT COUNT(*) AS n FROM (SELECT 1 FROM backup_chunk_refs WHERE digest = ? LIMIT 1)',
  );
  const state = db.prepare<[string, string], { last_good_at: number | null; alarm_since: number | null }>(
    'SELECT last_good_at, alarm_since FROM vessel_backup_state WHERE vessel_id = ? AND policy = ?',
  );
  const ensureState = db.prepare('INSERT OR IGNORE INTO vessel_backup_state (vessel_id, policy) VALUES (?, ?)');
  const setGood = db.prepare(
    `UPDATE vessel_backup_state SET last_good_id = ?, last_good_at = ? WHERE vessel_id = ? AND policy = ?
       AND (last_good_at IS NULL OR last_good_at < ?)`,
  );
  const clearAlarm = db.prepare(
    `UPDATE vessel_backup_state SET alarm_kind = NULL, alarm_reason = NULL, alarm_since = NULL
     WHERE vessel_id = ? AND policy = ? AND alarm_since <= ? AND (? = 1 OR alarm_kind != 'missed')`,
  );
  const setAlarm = db.prepare(
    `UPDATE vessel_backup_state SET alarm_kind = ?, alarm_reason = ?,
       alarm_since = CASE WHEN alarm_kind = ? THEN alarm_since ELSE ? END
     WHERE vessel_id = ? AND policy = ?`,
  );
  const states = db.prepare<
    [],
    {
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
    }
  >(
    `WITH k AS (
       SELECT vessel_id, policy FROM vessel_backup_state
       UNION SELECT vessel_id, policy FROM backups_ashore
     ), a AS (
       SELECT vessel_id, policy, id AS ashore_id, MAX(started_at) AS ashore_at FROM backups_ashore
       GROUP BY vessel_id, policy
     )
     SELECT k.vessel_id, v.name AS vessel, k.policy, s.last_good_id, s.last_good_at, s.alarm_kind, s.alarm_reason,
       s.alarm_since, a.ashore_id, a.ashore_at
     FROM k JOIN vessels v ON v.id = k.vessel_id
       LEFT JOIN vessel_backup_state s ON s.vessel_id = k.vessel_id AND s.policy = k.policy
       LEFT JOIN a ON a.vessel_id = k.vessel_id AND a.policy = k.policy
     WHERE v.revoked_at IS NULL
     ORDER BY v.name, k.policy`,
  );

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
      return db
        .transaction(() => {
          const held = byId.get(b.vesselId, b.id);
          if (held) {
            if (held.sha256 === b.sha256 && Buffer.compare(held.chunks, blob) === 0) return { created: false };
            throw new HubStoreError(`backup ${b.id} exists ashore with other contents`, 'exists', 409);
          }
          insert.run(
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
          );
          for (const d of new Set(b.chunks)) ref.run(b.vesselId, b.id, Buffer.from(d, 'hex'));
          return { created: true };
        })
        .immediate();
    },
    async get(vesselId, id) {
      const r = byId.get(vesselId, id);
      if (!r) return undefined;
      const { chunkCount: _count, ...rest } = summary(r);
      return { ...rest, chunks: digestsOf(r.chunks) };
    },
    async list(vesselId, q) {
      const rows = q.policy ? listPolicy.all(vesselId, q.policy, q.limit) : list.all(vesselId, q.limit);
      return rows.map(summary);
    },
    async prune(vesselId, policy, keep, now) {
      const orphans = db
        .transaction(() => {
          const removed: string[] = [];
          const maybe = new Map<string, Buffer>();
          ofPolicy.all(vesselId, policy).forEach((r, i) => {
            if (i === 0) return;
            if (i < keep.count && now - r.started_at <= keep.maxAgeMs) return;
            for (const { digest } of refsOf.all(vesselId, r.id)) maybe.set(digest.toString('hex'), digest);
            dropRefs.run(vesselId, r.id);
            dropBackup.run(vesselId, r.id);
            removed.push(r.id);
          });
          return { removed, maybe: [...maybe.values()].filter((d) => named.get(d)!.n === 0) };
        })
        .immediate();
      let chunksRemoved = 0;
      for (const d of orphans.maybe) {
        // Checked again just before: a backup recorded since the transaction may name it now.
        if (named.get(d)!.n > 0) continue;
        await chunks.remove(d.toString('hex'));
        chunksRemoved++;
      }
      return { removed: orphans.removed, chunksRemoved };
    },
    async noteResult(vesselId, r) {
      db.transaction(() => {
        ensureState.run(vesselId, r.policy);
        if (r.result === 'ok') {
          if (r.id) setGood.run(r.id, r.at, vesselId, r.policy, r.at);
          // A catch-up run after missed slots does not clear the missed alarm; the next run on time does.
          clearAlarm.run(vesselId, r.policy, r.at, r.catchUp ? 0 : 1);
          return;
        }
        const s = state.get(vesselId, r.policy);
        // A result older than the last good backup is history, not an alarm.
        if (s?.last_good_at != null && s.last_good_at > r.at) return;
        setAlarm.run(r.result, (r.reason ?? '').slice(0, 1000), r.result, r.at, vesselId, r.policy);
      }).immediate();
    },
    async states() {
      return states.all().map((r): BackupStateRecord => ({
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
