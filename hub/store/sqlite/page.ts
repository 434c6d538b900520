import type { Db } from '../../../shared/sqlite.js';
import type { FleetCounts, PageRecords } from '../page-records.js';
import {
  type FleetSqlRow,
  fleetCountsSql,
  fleetRow,
  fleetStatement,
  type PageDialect,
  VESSEL_ROLLOUTS_SQL,
  vesselRolloutRow,
} from '../page-sql.js';
import { cachedStatement } from './sql.js';
import { IN_GROUP } from './vessels.js';

// The page's statements (page-sql.ts) in SQLite's JSON functions.
const PENDING_ASHORE = `EXISTS (SELECT 1 FROM app_targets t JOIN releases r ON r.id = t.release_id
  WHERE t.vessel_id = vessels.id AND CASE WHEN json_type(vessels.status, '$.apps') IS NULL
    THEN r.version IS NOT vessels.current_release
    ELSE NOT EXISTS (SELECT 1 FROM json_each(vessels.status, '$.apps') a
      WHERE a.value ->> '$.app' = r.app AND a.value ->> '$.live' = r.version) END)`;
const SQLITE: PageDialect = {
  pendingAshore: PENDING_ASHORE,
  liveRelease: `EXISTS (SELECT 1 FROM json_each(vessels.status, '$.apps') a
    WHERE a.value ->> '$.live' = :release OR (a.value ->> '$.app') || '@' || (a.value ->> '$.live') = :release)`,
  inGroup: IN_GROUP.replace('?', ':group'),
  facts: `(SELECT json_group_array(json_object('app', r.app, 'version', r.version))
      FROM app_targets t JOIN releases r ON r.id = t.release_id WHERE t.vessel_id = vessels.id) AS desired,
    ${PENDING_ASHORE} AS pending_ashore,
    (SELECT json_object('id', rv.rollout_id, 'state', ro.state, 'wave', rv.wave, 'outcome', rv.outcome,
          'failure', rv.failure, 'reason', rv.reason)
      FROM rollout_vessels rv JOIN rollouts ro ON ro.id = rv.rollout_id
      WHERE rv.vessel_id = vessels.id ORDER BY rv.rollout_id DESC LIMIT 1) AS rollout,
    (SELECT json_object('type', e.type, 'at', e.ts_received) FROM events e
      WHERE e.vessel_id = vessels.id ORDER BY e.id DESC LIMIT 1) AS last_event`,
};

export function sqlitePage(db: Db): PageRecords {
  const counts = db.prepare<[{ stale: number; offline: number }], FleetCounts>(fleetCountsSql(SQLITE));
  const rollouts = db.prepare<[string, number], Record<string, unknown>>(VESSEL_ROLLOUTS_SQL);
  const forget = db.prepare('DELETE FROM page_sessions WHERE expires_at <= ?');
  const insertSession = db.prepare(
    'INSERT INTO page_sessions (id_hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
  );
  const getSession = db.prepare<
    [string, number],
    { token_id: string; csrf: string; created_at: number; expires_at: number }
  >('SELECT token_id, csrf, created_at, expires_at FROM page_sessions WHERE id_hash = ? AND expires_at > ?');
  const endSession = db.prepare('DELETE FROM page_sessions WHERE id_hash = ?');

  return {
    async fleet(q, clock) {
      const st = fleetStatement(SQLITE, q, clock);
      const rows = cachedStatement<FleetSqlRow>(db, st.sql).all(st.args);
      let total = rows[0]?.total ?? 0;
      // Past the last page: still say how many match.
      if (rows.length === 0 && q.offset > 0)
        total = (cachedStatement<{ n: number }>(db, st.countSql).get(st.countArgs) as { n: number }).n;
      return { rows: rows.map(fleetRow), total };
    },
    async counts(clock) {
      return counts.get({ stale: clock.staleBefore, offline: clock.offlineBefore })!;
    },
    async vesselRollouts(vesselId, limit) {
      return rollouts.all(vesselId, limit).map(vesselRolloutRow);
    },
    async createSession(idHash, s, now) {
      db.transaction(() => {
        forget.run(now);
        insertSession.run(idHash, s.tokenId, s.csrf, s.createdAt, s.expiresAt);
      })();
    },
    async session(idHash, now) {
      const r = getSession.get(idHash, now);
      return r && { tokenId: r.token_id, csrf: r.csrf, createdAt: r.created_at, expiresAt: r.expires_at };
    },
    async endSession(idHash) {
      endSession.run(idHash);
    },
  };
}
