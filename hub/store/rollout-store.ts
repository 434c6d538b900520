import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { StoredRelease } from './release-store.js';
import type { Vessel, VesselStore } from './vessel-store.js';

export class RolloutError extends TenderError {}

export type RolloutTarget = { kind: 'all' } | { kind: 'group'; group: string } | { kind: 'vessel'; name: string };

export function parseTarget(text: string): RolloutTarget {
  if (text === 'all') return { kind: 'all' };
  const m = /^(group|vessel):([a-z0-9][a-z0-9-]{0,62})$/.exec(text);
  if (!m)
    throw new RolloutError(
      `target must be all, group:NAME or vessel:NAME, got ${JSON.stringify(text)}`,
      'bad_target',
      2,
      400,
    );
  return m[1] === 'group' ? { kind: 'group', group: m[2]! } : { kind: 'vessel', name: m[2]! };
}

export interface Rollout {
  id: number;
  releaseId: number;
  target: string;
  state: string;
  createdAt: number;
  createdBy: string;
}

export type RolloutStore = ReturnType<typeof createRolloutStore>;

/**
 * A rollout makes a release the desired one for the vessels it targets. Waves, failure thresholds and
 * maintenance windows build on this table.
 */
export function createRolloutStore(db: Db, vessels: VesselStore) {
  const insert = db.prepare(
    'INSERT INTO rollouts (release_id, target, state, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
  );
  const setTarget = db.prepare(
    'INSERT INTO vessel_targets (vessel_id, release_id, rollout_id, set_at) VALUES (?, ?, ?, ?) ON CONFLICT(vessel_id) DO UPDATE SET release_id = excluded.release_id, rollout_id = excluded.rollout_id, set_at = excluded.set_at',
  );
  const allow = db.prepare('INSERT OR IGNORE INTO vessel_releases (vessel_id, release_id) VALUES (?, ?)');
  // Until the routes move onto the async HubStore, this store also keeps the per-app targets and rows
  // the rollout engine reads (migration 5), so both see the same rollouts.
  const setAppTarget = db.prepare(
    `INSERT INTO app_targets (vessel_id, app, release_id, rollout_id, set_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(vessel_id, app) DO UPDATE SET release_id = excluded.release_id, rollout_id = excluded.rollout_id,
       set_at = excluded.set_at`,
  );
  const addMember = db.prepare(
    'INSERT OR IGNORE INTO rollout_vessels (rollout_id, vessel_id, wave, started_at) VALUES (?, ?, 0, ?)',
  );
  const setApp = db.prepare('UPDATE rollouts SET app = ?, wave_started_at = ?, updated_at = ? WHERE id = ?');
  const targetOf = db.prepare<[string], { release_id: number; rollout_id: number }>(
    'SELECT release_id, rollout_id FROM vessel_targets WHERE vessel_id = ?',
  );
  const mayFetch = db.prepare<[string, number], { n: number }>(
    'SELECT COUNT(*) AS n FROM vessel_releases WHERE vessel_id = ? AND release_id = ?',
  );
  const list = db.prepare<
    [number],
    { id: number; release_id: number; target: string; state: string; created_at: number; created_by: string }
  >('SELECT * FROM rollouts ORDER BY id DESC LIMIT ?');
  const countTargets = db.prepare<[number], { n: number }>(
    'SELECT COUNT(*) AS n FROM vessel_targets WHERE rollout_id = ?',
  );

  function select(target: RolloutTarget): Vessel[] {
    const live = vessels.list(1_000_000).filter((v) => v.revokedAt === null);
    if (target.kind === 'all') return live;
    if (target.kind === 'group') return live.filter((v) => v.groups.includes(target.group));
    const v = live.find((x) => x.name === target.name);
    if (!v) throw new RolloutError(`no vessel named ${target.name}`, 'not_found', 1, 404);
    return [v];
  }

  return {
    start(
      release: StoredRelease,
      targetText: string,
      createdBy: string,
      now = Date.now(),
    ): { id: number; vessels: string[] } {
      const target = parseTarget(targetText);
      return db.transaction(() => {
        const chosen = select(target);
        if (chosen.length === 0)
          throw new RolloutError(`target ${targetText} matches no vessel`, 'empty_target', 1, 400);
        const id = Number(insert.run(release.id, targetText, 'active', now, createdBy).lastInsertRowid);
        setApp.run(release.app, now, now, id);
        for (const v of chosen) {
          setTarget.run(v.id, release.id, id, now);
          allow.run(v.id, release.id);
          setAppTarget.run(v.id, release.app, release.id, id, now);
          addMember.run(id, v.id, now);
        }
        return { id, vessels: chosen.map((v) => v.name) };
      })();
    },
    targetOf(vesselId: string): { releaseId: number; rolloutId: number } | undefined {
      const r = targetOf.get(vesselId);
      return r && { releaseId: r.release_id, rolloutId: r.rollout_id };
    },
    mayFetch(vesselId: string, releaseId: number): boolean {
      return mayFetch.get(vesselId, releaseId)!.n > 0;
    },
    list(limit = 100) {
      return list.all(limit).map((r) => ({
        id: r.id,
        releaseId: r.release_id,
        target: r.target,
        state: r.state,
        createdAt: r.created_at,
        createdBy: r.created_by,
        vessels: countTargets.get(r.id)!.n,
      }));
    },
  };
}
