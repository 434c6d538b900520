import { parseJson } from './json-text.js';
import type { FleetClock, FleetQuery, FleetRow, FleetSort, FleetState, VesselRolloutRow } from './page-records.js';

/**
 * The page's statements, written once for both stores: each store gives only what its SQL spells
 * differently (JSON functions), and binds the :name parameters its own way.
 */
export interface PageDialect {
  /** A condition on `vessels`: a release targeted ashore is not live in the vessel's report. */
  pendingAshore: string;
  /** A condition on `vessels`: its report has an app live at :release (as the version or as app@version). */
  liveRelease: string;
  /** A condition on `vessels`: it is in the group bound as :group. */
  inGroup: string;
  /** Select expressions for `desired`, `pending_ashore` (0/1), `rollout` and `last_event` (JSON text). */
  facts: string;
}

// The state definitions of page-records.ts, as SQL on `vessels` (clock values bound as :stale, :offline).
const FAILED_IN_ROLLOUT = `EXISTS (SELECT 1 FROM rollout_vessels rv JOIN rollouts ro ON ro.id = rv.rollout_id
  WHERE rv.vessel_id = vessels.id AND rv.outcome = 'failed' AND rv.superseded_by IS NULL
    AND ro.state IN ('active', 'paused', 'halted'))`;
const LIVE = 'vessels.revoked_at IS NULL';

function stateSql(pendingAshore: string): Record<FleetState, string> {
  return {
    revoked: 'vessels.revoked_at IS NOT NULL',
    never: `${LIVE} AND vessels.last_contact IS NULL`,
    online: `${LIVE} AND vessels.last_contact >= :stale`,
    stale: `${LIVE} AND vessels.last_contact < :stale AND vessels.last_contact >= :offline`,
    offline: `${LIVE} AND vessels.last_contact < :offline`,
    failing: `${LIVE} AND (vessels.status_flags LIKE '%,failing,%' OR ${FAILED_IN_ROLLOUT})`,
    // A target not live that the vessel holds, waits on a window for, or failed is not "updating".
    updating: `${LIVE} AND (vessels.status_flags LIKE '%,updating,%' OR (${pendingAshore}
      AND vessels.status_flags NOT LIKE '%,held,%' AND vessels.status_flags NOT LIKE '%,window,%'
      AND vessels.status_flags NOT LIKE '%,failing,%'))`,
    held: `${LIVE} AND vessels.status_flags LIKE '%,held,%'`,
    window: `${LIVE} AND vessels.status_flags LIKE '%,window,%'`,
  };
}

const SORT_SQL: Record<FleetSort, string> = {
  name: 'vessels.name',
  contact: 'vessels.last_contact',
  release: 'vessels.current_release',
  backlog: 'vt.backlog',
  report: 'vessels.status_received_at',
};

export const VESSEL_ROLLOUTS_SQL = `SELECT rv.rollout_id, ro.app, r.version, ro.state, rv.wave, rv.started_at,
    rv.outcome, rv.failure, rv.reason, rv.reported_at, rv.superseded_by
  FROM rollout_vessels rv JOIN rollouts ro ON ro.id = rv.rollout_id JOIN releases r ON r.id = ro.release_id
  WHERE rv.vessel_id = ? ORDER BY rv.rollout_id DESC LIMIT ?`;

/** The one statement counting the fleet per state (bind :stale and :offline). */
export function fleetCountsSql(d: PageDialect): string {
  const sums = Object.entries(stateSql(d.pendingAshore))
    .map(([k, cond]) => `COALESCE(SUM(CASE WHEN ${cond} THEN 1 ELSE 0 END), 0) AS "${k}"`)
    .join(', ');
  return `SELECT COUNT(*) AS total, ${sums} FROM vessels`;
}

export interface FleetStatement {
  /** The page's rows with their facts, in order; `total` on each row counts every match. */
  sql: string;
  /** How many match, for a page past the last one (bind countArgs). */
  countSql: string;
  args: Record<string, string | number>;
  countArgs: Record<string, string | number>;
}

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** One page of the fleet as one statement: the page's ids picked (filtered, sorted, paged), then their facts. */
export function fleetStatement(d: PageDialect, q: FleetQuery, clock: FleetClock): FleetStatement {
  const where: string[] = [];
  const args: Record<string, string | number> = { stale: clock.staleBefore, offline: clock.offlineBefore };
  if (q.search) {
    where.push("vessels.name LIKE :search ESCAPE '\\'");
    args.search = `%${escapeLike(q.search)}%`;
  }
  if (q.group !== undefined) {
    where.push(d.inGroup);
    args.group = q.group;
  }
  if (q.state) where.push(`(${stateSql(d.pendingAshore)[q.state]})`);
  if (q.release !== undefined) {
    where.push(`(vessels.current_release = :release OR ${d.liveRelease})`);
    args.release = q.release;
  }
  if (q.rollout !== undefined) {
    where.push('EXISTS (SELECT 1 FROM rollout_vessels x WHERE x.vessel_id = vessels.id AND x.rollout_id = :rollout)');
    args.rollout = q.rollout;
  }
  const countArgs = { ...args };
  const dir = q.desc ? 'DESC' : 'ASC';
  const key = SORT_SQL[q.sort];
  const order = `${key} IS NULL, ${key} ${dir}, vessels.name ${q.sort === 'name' ? dir : 'ASC'}`;
  const from = 'vessels LEFT JOIN vessel_telemetry vt ON vt.vessel_id = vessels.id';
  const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
  args.limit = q.limit;
  args.offset = q.offset;
  const sql = `WITH page AS (
      SELECT vessels.id, COUNT(*) OVER () AS total, ROW_NUMBER() OVER (ORDER BY ${order}) AS pos
      FROM ${from} ${filter} ORDER BY ${order} LIMIT :limit OFFSET :offset)
    SELECT vessels.id, vessels.name, vessels.groups, vessels.enrolled_at, vessels.revoked_at, vessels.last_contact,
      vessels.current_release, vessels.agent_version, vessels.status, vessels.status_received_at,
      vessels.status_flags, page.total, vt.backlog, vt.drops, vt.last_batch_at, ${d.facts}
    FROM page JOIN vessels ON vessels.id = page.id LEFT JOIN vessel_telemetry vt ON vt.vessel_id = vessels.id
    ORDER BY page.pos`;
  return { sql, countSql: `SELECT COUNT(*) AS n FROM ${from} ${filter}`, args, countArgs };
}

/** A row of fleetStatement as stored. */
export interface FleetSqlRow {
  id: string;
  name: string;
  groups: string;
  enrolled_at: number | null;
  revoked_at: number | null;
  last_contact: number | null;
  current_release: string | null;
  agent_version: string | null;
  status: string | null;
  status_received_at: number | null;
  status_flags: string;
  total: number;
  backlog: number | null;
  drops: string | null;
  last_batch_at: number | null;
  desired: string | null;
  pending_ashore: number;
  rollout: string | null;
  last_event: string | null;
}

export function fleetRow(r: FleetSqlRow): FleetRow {
  const drops = r.drops ? (parseJson(r.drops) as Record<string, { records: number }>) : {};
  return {
    id: r.id,
    name: r.name,
    groups: JSON.parse(r.groups) as string[],
    enrolledAt: r.enrolled_at,
    revokedAt: r.revoked_at,
    lastContact: r.last_contact,
    currentRelease: r.current_release,
    agentVersion: r.agent_version,
    status: r.status === null ? null : parseJson(r.status),
    statusReceivedAt: r.status_received_at,
    flags: r.status_flags.split(',').filter(Boolean),
    desired: r.desired ? (JSON.parse(r.desired) as { app: string; version: string }[]) : [],
    pendingAshore: r.pending_ashore === 1,
    telemetry:
      r.backlog === null
        ? null
        : {
            backlog: r.backlog,
            dropped: Object.values(drops).reduce((a, d) => a + (d?.records ?? 0), 0),
            lastBatchAt: r.last_batch_at,
          },
    rollout: r.rollout ? (JSON.parse(r.rollout) as FleetRow['rollout']) : null,
    lastEvent: r.last_event ? (JSON.parse(r.last_event) as FleetRow['lastEvent']) : null,
  };
}

export function vesselRolloutRow(r: Record<string, unknown>): VesselRolloutRow {
  return {
    rolloutId: r.rollout_id as number,
    app: r.app as string,
    version: r.version as string,
    rolloutState: r.state as string,
    wave: r.wave as number,
    startedAt: r.started_at as number | null,
    outcome: r.outcome as VesselRolloutRow['outcome'],
    failure: r.failure as string | null,
    reason: r.reason as string | null,
    reportedAt: r.reported_at as number | null,
    supersededBy: r.superseded_by as number | null,
  };
}
