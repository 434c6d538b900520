import type { Db } from '../../../shared/sqlite.js';
import { FINISHED_OUTCOMES, type RolloutOutcome } from '../../../shared/protocol/rollout-outcome.js';
import { assignWaves, DEFAULT_RULES, RolloutRuleError, type WaveCounts, type WaveRules } from '../../rollout/waves.js';
import { HubStoreError } from '../hub-store.js';
import type { RolloutMember, RolloutRecord, RolloutRecords, RolloutState, NewDirective } from '../rollout-records.js';
import { parseTarget } from '../rollout-target.js';
import type { AuditWriter } from './audit.js';
import { isUniqueViolation, parseJson } from './sql.js';
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

/**
 * Rollouts in waves on SQLite. Every method is one synchronous transaction; those that read before they
 * write take the write lock first (BEGIN IMMEDIATE), so a CLI or a second hub on the same file cannot
 * interleave. State changes are compare-and-set on the state (and wave) the engine saw.
 */
export function sqliteRollouts(db: Db, audit: AuditWriter): RolloutRecords {
  const live = 'SELECT id, name FROM vessels WHERE revoked_at IS NULL';
  const all = db.prepare<[], { id: string; name: string }>(`${live} ORDER BY name`);
  const inGroup = db.prepare<[string], { id: string; name: string }>(`${live} AND ${IN_GROUP} ORDER BY name`);
  const named = db.prepare<[string], { id: string; name: string }>(`${live} AND name = ?`);
  const releaseApp = db.prepare<[number], { app: string }>('SELECT app FROM releases WHERE id = ?');
  const insert = db.prepare(
    `INSERT INTO rollouts (release_id, app, kind, target, state, rules, canary, current_wave, wave_started_at,
       directive_id, created_at, created_by, updated_at)
     VALUES (?, ?, ?, ?, 'active', ?, ?, 0, ?, ?, ?, ?, ?)`,
  );
  const maxCounter = db.prepare<[string], { n: number | null }>(
    'SELECT MAX(counter) AS n FROM rollback_directives WHERE app = ?',
  );
  const insertDirective = db.prepare(
    `INSERT INTO rollback_directives (app, version, counter, envelope, targets, expires_at, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertMember = db.prepare(
    'INSERT OR IGNORE INTO rollout_vessels (rollout_id, vessel_id, wave, superseded_by) VALUES (?, ?, ?, ?)',
  );
  // The later rollout of an app to a vessel wins: an earlier one's row records it, a newer one's id is
  // what a late-joined row of an older rollout records.
  const newerOf = db.prepare<[string, string, number], { id: number | null }>(
    `SELECT MIN(m.rollout_id) AS id FROM rollout_vessels m JOIN rollouts r ON r.id = m.rollout_id
     WHERE m.vessel_id = ? AND r.app = ? AND m.rollout_id > ?`,
  );
  const supersedeOlder = db.prepare(
    `UPDATE rollout_vessels SET superseded_by = ? WHERE vessel_id = ? AND superseded_by IS NULL
       AND rollout_id < ? AND rollout_id IN (SELECT id FROM rollouts WHERE app = ?)`,
  );
  const setTarget = db.prepare(
    `INSERT INTO app_targets (vessel_id, app, release_id, rollout_id, set_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(vessel_id, app) DO UPDATE SET release_id = excluded.release_id, rollout_id = excluded.rollout_id,
       set_at = excluded.set_at WHERE excluded.rollout_id >= app_targets.rollout_id`,
  );
  const allow = db.prepare('INSERT OR IGNORE INTO vessel_releases (vessel_id, release_id) VALUES (?, ?)');
  const waveMembers = db.prepare<[number, number], { vessel_id: string; name: string }>(
    `SELECT m.vessel_id, v.name FROM rollout_vessels m JOIN vessels v ON v.id = m.vessel_id
     WHERE m.rollout_id = ? AND m.wave = ? AND m.superseded_by IS NULL AND m.started_at IS NULL ORDER BY v.name`,
  );
  const markStarted = db.prepare('UPDATE rollout_vessels SET started_at = ? WHERE rollout_id = ? AND vessel_id = ?');
  const byId = db.prepare<[number], Row>(`${SELECT} WHERE r.id = ?`);
  const list = db.prepare<[number], Row>(`${SELECT} ORDER BY r.id DESC LIMIT ?`);
  const open = db.prepare<[], Row>(`${SELECT} WHERE r.state IN ('active', 'paused') ORDER BY r.id`);
  const members = db.prepare<[number], MemberRow>(
    `SELECT m.*, v.name FROM rollout_vessels m JOIN vessels v ON v.id = m.vessel_id
     WHERE m.rollout_id = ? ORDER BY m.wave, v.name`,
  );
  const advance = db.prepare(
    `UPDATE rollouts SET current_wave = ?, wave_started_at = ?, updated_at = ?
     WHERE id = ? AND state = 'active' AND current_wave = ?`,
  );
  const finish = db.prepare(
    `UPDATE rollouts SET state = ?, reason = ?, counts = ?, updated_at = ? WHERE id = ? AND state = 'active'`,
  );
  const setState = db.prepare(
    'UPDATE rollouts SET state = ?, reason = COALESCE(?, reason), updated_at = ? WHERE id = ?',
  );
  const expire = db.prepare(
    `UPDATE rollout_vessels SET outcome = 'failed', failure = 'deadline-passed', reason = ?, reported_at = ?
     WHERE rollout_id = ? AND wave = ? AND started_at IS NOT NULL AND superseded_by IS NULL
       AND outcome NOT IN ${FINISHED_SQL}`,
  );
  const rowFor = db.prepare<
    [number, string, string, string],
    { rollout_id: number; event_epoch: string | null; event_seq: number | null }
  >(
    `SELECT m.rollout_id, m.event_epoch, m.event_seq FROM rollout_vessels m
     JOIN rollouts r ON r.id = m.rollout_id JOIN releases rel ON rel.id = r.release_id
     WHERE m.rollout_id = ? AND m.vessel_id = ? AND r.app = ? AND rel.version = ?`,
  );
  const newestRowFor = db.prepare<
    [string, string, string],
    { rollout_id: number; event_epoch: string | null; event_seq: number | null }
  >(
    `SELECT m.rollout_id, m.event_epoch, m.event_seq FROM rollout_vessels m
     JOIN rollouts r ON r.id = m.rollout_id JOIN releases rel ON rel.id = r.release_id
     WHERE m.vessel_id = ? AND r.app = ? AND rel.version = ? ORDER BY m.rollout_id DESC LIMIT 1`,
  );
  const report = db.prepare(
    `UPDATE rollout_vessels SET outcome = ?, failure = ?, reason = ?, progress = ?, until = ?, reported_at = ?,
       event_epoch = ?, event_seq = ? WHERE rollout_id = ? AND vessel_id = ?`,
  );
  const targetsOf = db.prepare<[string], { app: string; release_id: number; rollout_id: number; set_at: number }>(
    'SELECT app, release_id, rollout_id, set_at FROM app_targets WHERE vessel_id = ? ORDER BY app',
  );
  const mayFetch = db.prepare<[string, number], { n: number }>(
    'SELECT COUNT(*) AS n FROM vessel_releases WHERE vessel_id = ? AND release_id = ?',
  );
  const stateCounts = db.prepare<[], { state: string; n: number }>(
    'SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state ORDER BY state',
  );
  const outcomeCounts = db.prepare<[string], { rollout_id: number; outcome: string; n: number }>(
    `SELECT rollout_id, CASE WHEN superseded_by IS NULL THEN outcome ELSE 'superseded' END AS outcome,
       COUNT(*) AS n FROM rollout_vessels WHERE rollout_id IN (SELECT value FROM json_each(?))
     GROUP BY 1, 2 ORDER BY 1, 2`,
  );

  function resolve(targetText: string): { id: string; name: string }[] {
    let target: ReturnType<typeof parseTarget>;
    try {
      target = parseTarget(targetText);
    } catch (err) {
      throw new HubStoreError((err as Error).message, 'bad_target', 400);
    }
    const chosen =
      target.kind === 'all' ? all.all() : target.kind === 'group' ? inGroup.all(target.group) : named.all(target.name);
    if (target.kind === 'vessel' && chosen.length === 0)
      throw new HubStoreError(`no vessel named ${target.name}`, 'not_found', 404);
    return chosen;
  }

  /** A row for the vessel in rollout `id`, recording which of the two rollouts of the app wins. */
  function addMember(id: number, app: string, vesselId: string, wave: number): void {
    const newer = newerOf.get(vesselId, app, id)!.id;
    insertMember.run(id, vesselId, wave, newer);
    if (newer === null) supersedeOlder.run(id, vesselId, id, app);
  }

  /** The wave's vessels get the release as their target for its app; returns their names. */
  function startMembers(id: number, wave: number, now: number): string[] {
    const r = byId.get(id)!;
    const started = waveMembers.all(id, wave);
    for (const m of started) {
      markStarted.run(now, id, m.vessel_id);
      setTarget.run(m.vessel_id, r.app, r.release_id, id, now);
      allow.run(m.vessel_id, r.release_id);
    }
    return started.map((m) => m.name);
  }

  function storeDirective(d: NewDirective, now: number): number {
    const max = maxCounter.get(d.app)!.n ?? 0;
    if (d.counter <= max)
      throw new HubStoreError(
        `directive counter ${d.counter} is not above ${max}, the latest for app ${d.app}`,
        'stale_counter',
        409,
      );
    try {
      return Number(
        insertDirective.run(d.app, d.version, d.counter, d.envelope, JSON.stringify(d.targets), d.expiresAt, now)
          .lastInsertRowid,
      );
    } catch (err) {
      if (isUniqueViolation(err))
        throw new HubStoreError(`directive counter ${d.counter} of app ${d.app} exists`, 'stale_counter', 409);
      throw err;
    }
  }

  return {
    async start(r, now, entry) {
      return db
        .transaction(() => {
          const rules = r.rules ?? DEFAULT_RULES;
          const canary = r.canary ?? [];
          const chosen = resolve(r.target);
          if (chosen.length === 0) throw new HubStoreError(`target ${r.target} matches no vessel`, 'empty_target', 400);
          const app = releaseApp.get(r.releaseId)?.app;
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
          const directiveId = r.directive ? storeDirective(r.directive, now) : null;
          const id = Number(
            insert.run(
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
            ).lastInsertRowid,
          );
          for (const v of chosen) addMember(id, app, v.id, waves.get(v.name)!);
          startMembers(id, 0, now);
          audit(entry, now);
          const byWave: string[][] = rules.waves.map(() => []);
          for (const v of chosen) byWave[waves.get(v.name)!]!.push(v.name);
          return { id, vessels: chosen.map((v) => v.name), waves: byWave };
        })
        .immediate();
    },
    async get(id) {
      const r = byId.get(id);
      return r && fromRow(r);
    },
    async list(q) {
      return list.all(q.limit).map(fromRow);
    },
    async open() {
      return open.all().map(fromRow);
    },
    async members(id) {
      return members.all(id).map(memberFromRow);
    },
    async startWave(id, wave, now, entry) {
      return db
        .transaction(() => {
          if (advance.run(wave, now, now, id, wave - 1).changes !== 1) return null;
          const started = startMembers(id, wave, now);
          audit(entry, now);
          return started;
        })
        .immediate();
    },
    async finish(id, to, detail, now, entry) {
      return db
        .transaction(() => {
          const changed =
            finish.run(to, detail.reason, detail.counts && JSON.stringify(detail.counts), now, id).changes === 1;
          if (changed) audit(entry, now);
          return changed;
        })
        .immediate();
    },
    async transition(id, change, now, entry) {
      return db
        .transaction(() => {
          const r = byId.get(id);
          if (!r) throw new HubStoreError(`no rollout ${id}`, 'not_found', 404);
          if (!change.from.includes(r.state as RolloutState))
            throw new HubStoreError(
              `rollout ${id} is ${r.state}: only a rollout that is ${change.from.join(' or ')} can be ${change.verb}`,
              'bad_state',
              409,
            );
          setState.run(change.to, change.reason ?? null, now, id);
          audit(entry, now);
          return fromRow(byId.get(id)!);
        })
        .immediate();
    },
    async expire(id, wave, reason, now) {
      return expire.run(reason, now, id, wave).changes;
    },
    async enlist(id, now) {
      return db
        .transaction(() => {
          const r = byId.get(id);
          if (!r || (r.state !== 'active' && r.state !== 'paused') || r.target.startsWith('vessel:')) return [];
          const present = new Set(members.all(id).map((m) => m.vessel_id));
          const fresh = resolve(r.target).filter((v) => !present.has(v.id));
          const last = (JSON.parse(r.rules) as WaveRules).waves.length - 1;
          for (const v of fresh) addMember(id, r.app, v.id, last);
          if (r.state === 'active' && r.current_wave === last) startMembers(id, last, now);
          return fresh.map((v) => v.name);
        })
        .immediate();
    },
    async recordOutcome(vesselId, ev, order, now) {
      return db
        .transaction(() => {
          const row =
            ev.rolloutId !== null
              ? rowFor.get(ev.rolloutId, vesselId, ev.app, ev.version)
              : newestRowFor.get(vesselId, ev.app, ev.version);
          if (!row) return undefined;
          // In order: an event at or before the last one applied (same outbox epoch) is a late copy.
          if (row.event_epoch === order.epoch && row.event_seq !== null && order.seq <= row.event_seq) return undefined;
          report.run(
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
          );
          return row.rollout_id;
        })
        .immediate();
    },
    async targetsOf(vesselId) {
      return targetsOf
        .all(vesselId)
        .map((t) => ({ app: t.app, releaseId: t.release_id, rolloutId: t.rollout_id, setAt: t.set_at }));
    },
    async mayFetch(vesselId, releaseId) {
      return mayFetch.get(vesselId, releaseId)!.n > 0;
    },
    async stateCounts() {
      return stateCounts.all().map((s) => ({ state: s.state as RolloutState, n: s.n }));
    },
    async outcomeCounts(ids) {
      return outcomeCounts
        .all(JSON.stringify(ids))
        .map((c) => ({ rolloutId: c.rollout_id, outcome: c.outcome as RolloutOutcome | 'superseded', n: c.n }));
    },
  };
}
