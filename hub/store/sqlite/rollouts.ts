import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type RolloutRecord, type RolloutRecords } from '../hub-store.js';
import { parseTarget } from '../rollout-store.js';
import type { AuditWriter } from './audit.js';
import { IN_GROUP } from './vessels.js';

interface Row {
  id: number;
  release_id: number;
  target: string;
  state: string;
  created_at: number;
  created_by: string;
  vessels: number;
}
const fromRow = (r: Row): RolloutRecord => ({
  id: r.id,
  releaseId: r.release_id,
  target: r.target,
  state: r.state,
  createdAt: r.created_at,
  createdBy: r.created_by,
  vessels: r.vessels,
});
const SELECT = `SELECT r.*, (SELECT COUNT(*) FROM vessel_targets t WHERE t.rollout_id = r.id) AS vessels FROM rollouts r`;

export function sqliteRollouts(db: Db, audit: AuditWriter): RolloutRecords {
  const live = 'SELECT id, name FROM vessels WHERE revoked_at IS NULL';
  const all = db.prepare<[], { id: string; name: string }>(`${live} ORDER BY name`);
  const inGroup = db.prepare<[string], { id: string; name: string }>(`${live} AND ${IN_GROUP} ORDER BY name`);
  const named = db.prepare<[string], { id: string; name: string }>(`${live} AND name = ?`);
  const insert = db.prepare(
    'INSERT INTO rollouts (release_id, target, state, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
  );
  const setTarget = db.prepare(
    `INSERT INTO vessel_targets (vessel_id, release_id, rollout_id, set_at) VALUES (?, ?, ?, ?)
     ON CONFLICT(vessel_id) DO UPDATE SET release_id = excluded.release_id, rollout_id = excluded.rollout_id,
       set_at = excluded.set_at`,
  );
  const allow = db.prepare('INSERT OR IGNORE INTO vessel_releases (vessel_id, release_id) VALUES (?, ?)');
  const byId = db.prepare<[number], Row>(`${SELECT} WHERE r.id = ?`);
  const list = db.prepare<[number], Row>(`${SELECT} ORDER BY r.id DESC LIMIT ?`);
  const targetOf = db.prepare<[string], { release_id: number; rollout_id: number; set_at: number }>(
    'SELECT release_id, rollout_id, set_at FROM vessel_targets WHERE vessel_id = ?',
  );
  const mayFetch = db.prepare<[string, number], { n: number }>(
    'SELECT COUNT(*) AS n FROM vessel_releases WHERE vessel_id = ? AND release_id = ?',
  );

  return {
    async start(r, now, entry) {
      let target: ReturnType<typeof parseTarget>;
      try {
        target = parseTarget(r.target);
      } catch (err) {
        throw new HubStoreError((err as Error).message, 'bad_target', 400);
      }
      return db
        .transaction(() => {
          const chosen =
            target.kind === 'all'
              ? all.all()
              : target.kind === 'group'
                ? inGroup.all(target.group)
                : named.all(target.name);
          if (target.kind === 'vessel' && chosen.length === 0)
            throw new HubStoreError(`no vessel named ${target.name}`, 'not_found', 404);
          if (chosen.length === 0) throw new HubStoreError(`target ${r.target} matches no vessel`, 'empty_target', 400);
          const id = Number(insert.run(r.releaseId, r.target, 'active', now, r.createdBy).lastInsertRowid);
          for (const v of chosen) {
            setTarget.run(v.id, r.releaseId, id, now);
            allow.run(v.id, r.releaseId);
          }
          audit(entry, now);
          return { id, vessels: chosen.map((v) => v.name) };
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
    async targetOf(vesselId) {
      const r = targetOf.get(vesselId);
      return r && { releaseId: r.release_id, rolloutId: r.rollout_id, setAt: r.set_at };
    },
    async mayFetch(vesselId, releaseId) {
      return mayFetch.get(vesselId, releaseId)!.n > 0;
    },
  };
}
