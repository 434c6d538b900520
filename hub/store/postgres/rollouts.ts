import { FINISHED_OUTCOMES, type RolloutOutcome } from '../../../shared/protocol/rollout-outcome.js';
import { assignWaves, DEFAULT_RULES, RolloutRuleError, type WaveCounts, type WaveRules } from '../../rollout/waves.js';
import { HubStoreError } from '../hub-store.js';
import type { NewDirective, RolloutMember, RolloutRecord, RolloutRecords, RolloutState } from '../rollout-records.js';
import { parseTarget } from '../rollout-target.js';
import { isUniqueViolation, parseJson, type PgAuditWriter, type PgDb, type Queryable } from './pg.js';
import { IN_GROUP } from './vessels.js';

interface Row {
  id: number;
  release_id: number;
  app: string;
  version: string;
  kind: string;
  target: string;
  state: string;
  rules: string;
  canary: string;
  current_wave: number;
  wave_started_at: number | null;
  reason: string | null;
  counts: string | null;
  directive_id: number | null;
  created_at: number;
  created_by: string;
  updated_at: number;
  vessels: number;
}
const fromRow = (r: Row): RolloutRecord => ({
  id: r.id,
  releaseId: r.release_id,
  app: r.app,
  version: r.version,
  kind: r.kind === 'rollback' ? 'rollback' : 'release',
  target: r.target,
  state: r.state as RolloutState,
  rules: JSON.parse(r.rules) as WaveRules,
  canary: JSON.parse(r.canary) as string[],
  currentWave: r.current_wave,
  waveStartedAt: r.wave_started_at,
  reason: r.reason,
  counts: r.counts === null ? null : (JSON.parse(r.counts) as WaveCounts),
  directiveId: r.directive_id,
  createdAt: r.created_at,
  createdBy: r.created_by,
  updatedAt: r.updated_at,
  vessels: r.vessels,
});
const SELECT = `SELECT r.*, rel.version AS version,
  (SELECT COUNT(*) FROM app_targets t WHERE t.rollout_id = r.id) AS vessels
  FROM rollouts r JOIN releases rel ON rel.id = r.release_id`;

interface MemberRow {
  vessel_id: string;
  name: string;
  wave: number;
  started_at: number | null;
  outcome: string;
  failure: string | null;
  reason: string | null;
  progress: string | null;
  until: string | null;
  reported_at: number | null;
  superseded_by: number | null;
}
const memberFromRow = (r: MemberRow): RolloutMember => ({
  vesselId: r.vessel_id,
  vessel: r.name,
  wave: r.wave,
  startedAt: r.started_at,
  outcome: r.outcome as RolloutOutcome,
  failure: r.failure,
  reason: r.reason,
  progress: r.progress === null ? null : (parseJson(r.progress) as { done: number; total: number }),
  until: r.until,
  reportedAt: r.reported_at,
  supersededBy: r.superseded_by,
});

const FINISHED_SQL = `(${FINISHED_OUTCOMES.map((o) => `'${o}'`).join(', ')})`;
const LIVE = 'SELECT id, name FROM vessels WHERE revoked_at IS NULL';
const MEMBERS = `SELECT m.*, v.name FROM rollout_vessels m JOIN vessels v ON v.id = m.vessel_id
  WHERE m.rollout_id = ? ORDER BY m.wave, v.name`;
type Chosen = { id: string; name: string };
type RowRef = { rollout_id: number; event_epoch: string | null; event_seq: number | null };

/**
 * Rollouts in waves on PostgreSQL. Every method that reads before it writes runs in one transaction
 * under the store's write lock (pg.ts), so two hub processes ticking the same rollout see each other's
 * steps; the state changes are compare-and-set on the state (and wave) the engine saw, as on SQLite.
 */
export function pgRollouts(db: PgDb, audit: PgAuditWriter): RolloutRecords {
  const byId = async (q: Queryable, id: number) => q.get<Row>(`${SELECT} WHERE r.id = ?`, [id]);

  async function resolve(q: Queryable, targetText: string): Promise<Chosen[]> {
    let target: ReturnType<typeof parseTarget>;
    try {
      target = parseTarget(targetText);
    } catch (err) {
      throw new HubStoreError((err as Error).message, 'bad_target', 400);
    }
    const chosen =
      target.kind === 'all'
        ? await q.all<Chosen>(`${LIVE} ORDER BY name`)
        : target.kind === 'group'
          ? await q.all<Chosen>(`${LIVE} AND ${IN_GROUP} ORDER BY name`, [target.group])
          : await q.all<Chosen>(`${LIVE} AND name = ?`, [target.name]);
    if (target.kind === 'vessel' && chosen.length === 0)
      throw new HubStoreError(`no vessel named ${target.name}`, 'not_found', 404);
    return chosen;
  }

  /** A row for the vessel in rollout `id`, recording which of the two rollouts of the app wins. */
  async function addMember(q: Queryable, id: number, app: string, vesselId: string, wave: number): Promise<void> {
    // The later rollout of an app to a vessel wins: an earlier one's row records it, a newer one's id is
    // what a late-joined row of an older rollout records.
    const newer = (await q.get<{ id: number | null }>(
      `SELECT MIN(m.rollout_id) AS id FROM rollout_vessels m JOIN rollouts r ON r.id = m.rollout_id
       WHERE m.vessel_id = ? AND r.app = ? AND m.rollout_id > ?`,
      [vesselId, app, id],
    ))!.id;
    await q.run(
      `INSERT INTO rollout_vessels (rollout_id, vessel_id, wave, superseded_by) VALUES (?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
      [id, vesselId, wave, newer],
    );
    if (newer === null)
      await q.run(
        `UPDATE rollout_vessels SET superseded_by = ? WHERE vessel_id = ? AND superseded_by IS NULL
           AND rollout_id < ? AND rollout_id IN (SELECT id FROM rollouts WHERE app = ?)`,
        [id, vesselId, id, app],
      );
  }

  /** The wave's vessels get the release as their target for its app; returns their names. */
  async function startMembers(q: Queryable, id: number, wave: number, now: number): Promise<string[]> {
    const r = (await byId(q, id))!;
    const started = await q.all<{ vessel_id: string; name: string }>(
      `SELECT m.vessel_id, v.name FROM rollout_vessels m JOIN vessels v ON v.id = m.vessel_id
       WHERE m.rollout_id = ? AND m.wave = ? AND m.superseded_by IS NULL AND m.started_at IS NULL ORDER BY v.name`,
      [id, wave],
    );
    if (started.length === 0) return [];
    const ids = started.map((m) => m.vessel_id);
    await q.run('UPDATE rollout_vessels SET started_at = ? WHERE rollout_id = ? AND vessel_id = ANY(?::text[])', [
      now,
      id,
      ids,
    ]);
    await q.run(
      `INSERT INTO app_targets (vessel_id, app, release_id, rollout_id, set_at)
       SELECT v, ?::text, ?::bigint, ?::bigint, ?::bigint FROM unnest(?::text[]) AS v
       ON CONFLICT (vessel_id, app) DO UPDATE SET release_id = excluded.release_id,
         rollout_id = excluded.rollout_id, set_at = excluded.set_at
       WHERE excluded.rollout_id >= app_targets.rollout_id`,
      [r.app, r.release_id, id, now, ids],
    );
    await q.run(
      `INSERT INTO vessel_releases (vessel_id, release_id) SELECT v, ?::bigint FROM unnest(?::text[]) AS v
       ON CONFLICT DO NOTHING`,
      [r.release_id, ids],
    );
    return started.map((m) => m.name);
  }

  async function storeDirective(q: Queryable, d: NewDirective, now: number): Promise<number> {
    const max =
      (await q.get<{ n: number | null }>('SELECT MAX(counter) AS n FROM rollback_directives WHERE app = ?', [d.app]))!
        .n ?? 0;
    if (d.counter <= max)
      throw new HubStoreError(
        `directive counter ${d.counter} is not above ${max}, the latest for app ${d.app}`,
        'stale_counter',
        409,
      );
    return (await q.get<{ id: number }>(
      `INSERT INTO rollback_directives (app, version, counter, envelope, targets, expires_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      [d.app, d.version, d.counter, d.envelope, JSON.stringify(d.targets), d.expiresAt, now],
    ))!.id;
  }

  return {
    async start(r, now, entry) {
      try {
        return await db.tx(
          async (q) => {
            const rules = r.rules ?? DEFAULT_RULES;
            const canary = r.canary ?? [];
            const chosen = await resolve(q, r.target);
            if (chosen.length === 0)
              throw new HubStoreError(`target ${r.target} matches no vessel`, 'empty_target', 400);
            const app = (await q.get<{ app: string }>('SELECT app FROM releases WHERE id = ?', [r.releaseId]))?.app;
            if (app === undefined) throw new HubStoreError(`no release with id ${r.releaseId}`, 'not_found', 404);
            let waves: Map<string, number>;
            try {
              waves = assignWaves(
                chosen.map((v) => v.name),
                rules.waves,
                canary,
              );
            } catch (err) {
              if (err instanceof RolloutRuleError) throw new HubStoreError(err.message, 'bad_rollout', 400);
              throw err;
            }
            const directiveId = r.directive ? await storeDirective(q, r.directive, now) : null;
            const id = (await q.get<{ id: number }>(
              `INSERT INTO rollouts (release_id, app, kind, target, state, rules, canary, current_wave,
                 wave_started_at, directive_id, created_at, created_by, updated_at)
               VALUES (?, ?, ?, ?, 'active', ?, ?, 0, ?, ?, ?, ?, ?) RETURNING id`,
              [
                r.releaseId,
                app,
                r.kind ?? 'release',
                r.target,
                JSON.stringify(rules),
                JSON.stringify(canary),
                now,
                directiveId,
                now,
                r.createdBy,
                now,
              ],
            ))!.id;
            for (const v of chosen) await addMember(q, id, app, v.id, waves.get(v.name)!);
            await startMembers(q, id, 0, now);
            await audit(q, entry, now);
            const byWave: string[][] = rules.waves.map(() => []);
            for (const v of chosen) byWave[waves.get(v.name)!]!.push(v.name);
            return { id, vessels: chosen.map((v) => v.name), waves: byWave };
          },
          { lock: true },
        );
      } catch (err) {
        if (isUniqueViolation(err) && r.directive)
          throw new HubStoreError(
            `directive counter ${r.directive.counter} of app ${r.directive.app} exists`,
            'stale_counter',
            409,
          );
        throw err;
      }
    },
    async get(id) {
      const r = await byId(db, id);
      return r && fromRow(r);
    },
    async list(q) {
      return (await db.all<Row>(`${SELECT} ORDER BY r.id DESC LIMIT ?`, [q.limit])).map(fromRow);
    },
    async open() {
      return (await db.all<Row>(`${SELECT} WHERE r.state IN ('active', 'paused') ORDER BY r.id`)).map(fromRow);
    },
    async members(id) {
      return (await db.all<MemberRow>(MEMBERS, [id])).map(memberFromRow);
    },
    async startWave(id, wave, now, entry) {
      return db.tx(
        async (q) => {
          const advanced = await q.run(
            `UPDATE rollouts SET current_wave = ?, wave_started_at = ?, updated_at = ?
             WHERE id = ? AND state = 'active' AND current_wave = ?`,
            [wave, now, now, id, wave - 1],
          );
          if (advanced !== 1) return null;
          const started = await startMembers(q, id, wave, now);
          await audit(q, entry, now);
          return started;
        },
        { lock: true },
      );
    },
    async finish(id, to, detail, now, entry) {
      return db.tx(
        async (q) => {
          const changed =
            (await q.run(
              `UPDATE rollouts SET state = ?, reason = ?, counts = ?, updated_at = ? WHERE id = ? AND state = 'active'`,
              [to, detail.reason, detail.counts && JSON.stringify(detail.counts), now, id],
            )) === 1;
          if (changed) await audit(q, entry, now);
          return changed;
        },
        { lock: true },
      );
    },
    async transition(id, change, now, entry) {
      return db.tx(
        async (q) => {
          const r = await byId(q, id);
          if (!r) throw new HubStoreError(`no rollout ${id}`, 'not_found', 404);
          if (!change.from.includes(r.state as RolloutState))
            throw new HubStoreError(
              `rollout ${id} is ${r.state}: only a rollout that is ${change.from.join(' or ')} can be ${change.verb}`,
              'bad_state',
              409,
            );
          await q.run('UPDATE rollouts SET state = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ?', [
            change.to,
            change.reason ?? null,
            now,
            id,
          ]);
          await audit(q, entry, now);
          return fromRow((await byId(q, id))!);
        },
        { lock: true },
      );
    },
    async expire(id, wave, reason, now) {
      return db.run(
        `UPDATE rollout_vessels SET outcome = 'failed', failure = 'deadline-passed', reason = ?, reported_at = ?
         WHERE rollout_id = ? AND wave = ? AND started_at IS NOT NULL AND superseded_by IS NULL
           AND outcome NOT IN ${FINISHED_SQL}`,
        [reason, now, id, wave],
      );
    },
    async enlist(id, now) {
      return db.tx(
        async (q) => {
          const r = await byId(q, id);
          if (!r || (r.state !== 'active' && r.state !== 'paused') || r.target.startsWith('vessel:')) return [];
          const present = new Set((await q.all<MemberRow>(MEMBERS, [id])).map((m) => m.vessel_id));
          const fresh = (await resolve(q, r.target)).filter((v) => !present.has(v.id));
          const last = (JSON.parse(r.rules) as WaveRules).waves.length - 1;
          for (const v of fresh) await addMember(q, id, r.app, v.id, last);
          if (r.state === 'active' && r.current_wave === last) await startMembers(q, id, last, now);
          return fresh.map((v) => v.name);
        },
        { lock: true },
      );
    },
    async recordOutcome(vesselId, ev, order, now) {
      // Row locks, not the write lock: outcomes arrive with telemetry. FOR UPDATE orders two hubs applying
      // events of one vessel, so the "after the last applied" check and the write cannot interleave.
      return db.tx(async (q) => {
        const row =
          ev.rolloutId !== null
            ? await q.get<RowRef>(
                `SELECT m.rollout_id, m.event_epoch, m.event_seq FROM rollout_vessels m
                 JOIN rollouts r ON r.id = m.rollout_id JOIN releases rel ON rel.id = r.release_id
                 WHERE m.rollout_id = ? AND m.vessel_id = ? AND r.app = ? AND rel.version = ? FOR UPDATE OF m`,
                [ev.rolloutId, vesselId, ev.app, ev.version],
              )
            : await q.get<RowRef>(
                `SELECT m.rollout_id, m.event_epoch, m.event_seq FROM rollout_vessels m
                 JOIN rollouts r ON r.id = m.rollout_id JOIN releases rel ON rel.id = r.release_id
                 WHERE m.vessel_id = ? AND r.app = ? AND rel.version = ? ORDER BY m.rollout_id DESC LIMIT 1
                 FOR UPDATE OF m`,
                [vesselId, ev.app, ev.version],
              );
        if (!row) return undefined;
        // In order: an event at or before the last one applied (same outbox epoch) is a late copy.
        if (row.event_epoch === order.epoch && row.event_seq !== null && order.seq <= row.event_seq) return undefined;
        await q.run(
          `UPDATE rollout_vessels SET outcome = ?, failure = ?, reason = ?, progress = ?, until = ?, reported_at = ?,
             event_epoch = ?, event_seq = ? WHERE rollout_id = ? AND vessel_id = ?`,
          [
            ev.outcome,
            ev.failure ?? null,
            ev.reason ?? null,
            ev.progress ? JSON.stringify(ev.progress) : null,
            ev.until ?? null,
            now,
            order.epoch,
            order.seq,
            row.rollout_id,
            vesselId,
          ],
        );
        return row.rollout_id;
      });
    },
    async targetsOf(vesselId) {
      const rows = await db.all<{ app: string; release_id: number; rollout_id: number; set_at: number }>(
        'SELECT app, release_id, rollout_id, set_at FROM app_targets WHERE vessel_id = ? ORDER BY app',
        [vesselId],
      );
      return rows.map((t) => ({ app: t.app, releaseId: t.release_id, rolloutId: t.rollout_id, setAt: t.set_at }));
    },
    async mayFetch(vesselId, releaseId) {
      const r = await db.get<{ n: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM vessel_releases WHERE vessel_id = ? AND release_id = ?) AS n',
        [vesselId, releaseId],
      );
      return r!.n;
    },
    async stateCounts() {
      const rows = await db.all<{ state: string; n: number }>(
        'SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state ORDER BY state',
      );
      return rows.map((s) => ({ state: s.state as RolloutState, n: s.n }));
    },
    async outcomeCounts(ids) {
      const rows = await db.all<{ rollout_id: number; outcome: string; n: number }>(
        `SELECT rollout_id, CASE WHEN superseded_by IS NULL THEN outcome ELSE 'superseded' END AS outcome,
           COUNT(*) AS n FROM rollout_vessels WHERE rollout_id = ANY(?::bigint[])
         GROUP BY 1, 2 ORDER BY 1, 2`,
        [ids],
      );
      return rows.map((c) => ({
        rolloutId: c.rollout_id,
        outcome: c.outcome as RolloutOutcome | 'superseded',
        n: c.n,
      }));
    },
  };
}
