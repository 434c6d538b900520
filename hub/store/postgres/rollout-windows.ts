import type { WindowRecord, WindowRecords } from '../rollout-records.js';
import type { PgAuditWriter, PgDb } from './pg.js';

interface Row {
  scope: string;
  spec: string;
  set_at: number;
  set_by: string;
}

/** Maintenance windows per vessel or group; a vessel's own window wins over its groups'. */
export function pgWindows(db: PgDb, audit: PgAuditWriter): WindowRecords {
  return {
    async set(w, now, entry) {
      await db.tx(async (q) => {
        await q.run(
          `INSERT INTO maintenance_windows (scope, spec, set_at, set_by) VALUES (?, ?, ?, ?)
           ON CONFLICT (scope) DO UPDATE SET spec = excluded.spec, set_at = excluded.set_at, set_by = excluded.set_by`,
          [w.scope, w.spec, now, w.setBy],
        );
        await audit(q, entry, now);
      });
    },
    async clear(scope, now, entry) {
      return db.tx(async (q) => {
        const gone = (await q.run('DELETE FROM maintenance_windows WHERE scope = ?', [scope])) === 1;
        if (gone) await audit(q, entry, now);
        return gone;
      });
    },
    async list() {
      return (await db.all<Row>('SELECT * FROM maintenance_windows ORDER BY scope')).map((r): WindowRecord => ({
        scope: r.scope,
        spec: r.spec,
        setAt: r.set_at,
        setBy: r.set_by,
      }));
    },
    async forVessel(name, groups) {
      const own = `vessel:${name}`;
      const scopes = [own, ...[...groups].sort().map((g) => `group:${g}`)];
      const rows = await db.all<Row>('SELECT * FROM maintenance_windows WHERE scope = ANY(?::text[])', [scopes]);
      const found = new Map(rows.map((r) => [r.scope, r.spec]));
      for (const s of scopes) {
        const spec = found.get(s);
        if (spec !== undefined) return { spec, source: s };
      }
      return null;
    },
  };
}
