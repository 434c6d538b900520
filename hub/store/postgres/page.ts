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
import type { PgDb } from './pg.js';
import { IN_GROUP } from './vessels.js';

/**
 * The page's records on PostgreSQL: the statements of page-sql.ts in PostgreSQL's spelling (jsonb for the
 * report's apps, jsonb_build_object for the joined facts), their :name parameters turned by `named` into
 * the pool's positional ones.
 */
const APPS = `jsonb_array_elements(CASE WHEN jsonb_typeof(vessels.status::jsonb -> 'apps') = 'array'
  THEN vessels.status::jsonb -> 'apps' ELSE '[]'::jsonb END)`;
const PENDING_ASHORE = `EXISTS (SELECT 1 FROM app_targets t JOIN releases r ON r.id = t.release_id
  WHERE t.vessel_id = vessels.id AND CASE WHEN jsonb_typeof(vessels.status::jsonb -> 'apps') IS DISTINCT FROM 'array'
    THEN r.version IS DISTINCT FROM vessels.current_release
    ELSE NOT EXISTS (SELECT 1 FROM ${APPS} a WHERE a ->> 'app' = r.app AND a ->> 'live' = r.version) END)`;
const POSTGRES: PageDialect = {
  pendingAshore: PENDING_ASHORE,
  liveRelease: `EXISTS (SELECT 1 FROM ${APPS} a
    WHERE a ->> 'live' = :release OR (a ->> 'app') || '@' || (a ->> 'live') = :release)`,
  inGroup: IN_GROUP.replace('?', ':group'),
  facts: `(SELECT jsonb_agg(jsonb_build_object('app', r.app, 'version', r.version) ORDER BY r.app)::text
      FROM app_targets t JOIN releases r ON r.id = t.release_id WHERE t.vessel_id = vessels.id) AS desired,
    CASE WHEN ${PENDING_ASHORE} THEN 1 ELSE 0 END AS pending_ashore,
    (SELECT jsonb_build_object('id', rv.rollout_id, 'state', ro.state, 'wave', rv.wave, 'outcome', rv.outcome,
          'failure', rv.failure, 'reason', rv.reason)::text
      FROM rollout_vessels rv JOIN rollouts ro ON ro.id = rv.rollout_id
      WHERE rv.vessel_id = vessels.id ORDER BY rv.rollout_id DESC LIMIT 1) AS rollout,
    (SELECT jsonb_build_object('type', e.type, 'at', e.ts_received)::text FROM events e
      WHERE e.vessel_id = vessels.id ORDER BY e.id DESC LIMIT 1) AS last_event`,
};

export function pgPage(db: PgDb): PageRecords {
  const countsSql = fleetCountsSql(POSTGRES);

  return {
    async fleet(q, clock) {
      const st = fleetStatement(POSTGRES, q, clock);
      const rows = await db.all<FleetSqlRow>(...named(st.sql, st.args));
      let total = rows[0]?.total ?? 0;
      // Past the last page: still say how many match.
      if (rows.length === 0 && q.offset > 0)
        total = (await db.get<{ n: number }>(...named(st.countSql, st.countArgs)))?.n ?? 0;
      return { rows: rows.map(fleetRow), total };
    },
    async counts(clock) {
      return (await db.get<FleetCounts>(
        ...named(countsSql, { stale: clock.staleBefore, offline: clock.offlineBefore }),
      ))!;
    },
    async vesselRollouts(vesselId, limit) {
      return (await db.all<Record<string, unknown>>(VESSEL_ROLLOUTS_SQL, [vesselId, limit])).map(vesselRolloutRow);
    },
    async createSession(idHash, s, now) {
      await db.tx(async (tx) => {
        await tx.run('DELETE FROM page_sessions WHERE expires_at <= ?', [now]);
        await tx.run(
          'INSERT INTO page_sessions (id_hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
          [idHash, s.tokenId, s.csrf, s.createdAt, s.expiresAt],
        );
      });
    },
    async session(idHash, now) {
      const r = await db.get<{ token_id: string; csrf: string; created_at: number; expires_at: number }>(
        'SELECT token_id, csrf, created_at, expires_at FROM page_sessions WHERE id_hash = ? AND expires_at > ?',
        [idHash, now],
      );
      return r && { tokenId: r.token_id, csrf: r.csrf, createdAt: r.created_at, expiresAt: r.expires_at };
    },
    async endSession(idHash) {
      await db.run('DELETE FROM page_sessions WHERE id_hash = ?', [idHash]);
    },
  };
}

/** :name parameters to positional `?` ones, in order (a `::type` cast is left alone). */
function named(sql: string, args: Record<string, unknown>): [string, unknown[]] {
  const values: unknown[] = [];
  const text = sql.replace(/(?<!:):([a-z]+)\b/g, (_m, name: string) => {
    if (!(name in args)) throw new Error(`no value for :${name}`);
    values.push(args[name]);
    return '?';
  });
  return [text, values];
}
