import type { Db } from '../../../shared/sqlite.js';
import type { WindowRecord, WindowRecords } from '../rollout-records.js';
import type { AuditWriter } from './audit.js';

interface Row {
  scope: string;
  spec: string;
  set_at: number;
  set_by: string;
}

/** Maintenance windows per vessel or group; a vessel's own window wins over its groups'. */
export function sqliteWindows(db: Db, audit: AuditWriter): WindowRecords {
  const upsert = db.prepare(
    `INSERT INTO maintenance_windows (scope, spec, set_at, set_by) VALUES (?, ?, ?, ?)
     ON CONFLICT(scope) DO UPDATE SET spec = excluded.spec, set_at = excluded.set_at, set_by = excluded.set_by`,
  );
  const remove = db.prepare('DELETE FROM maintenance_windows WHERE scope = ?');
  const list = db.prepare<[], Row>('SELECT * FROM maintenance_windows ORDER BY scope');
  const forScopes = db.prepare<[string], Row>(
    'SELECT * FROM maintenance_windows WHERE scope IN (SELECT value FROM json_each(?))',
  );
  return {
    async set(w, now, entry) {
      db.transaction(() => {
        upsert.run(w.scope, w.spec, now, w.setBy);
        audit(entry, now);
      })();
    },
    async clear(scope, now, entry) {
      return db.transaction(() => {
        const gone = remove.run(scope).changes === 1;
        if (gone) audit(entry, now);
        return gone;
      })();
    },
    async list() {
      return list.all().map((r): WindowRecord => ({ scope: r.scope, spec: r.spec, setAt: r.set_at, setBy: r.set_by }));
    },
    async forVessel(name, groups) {
      const own = `vessel:${name}`;
      const scopes = [own, ...[...groups].sort().map((g) => `group:${g}`)];
      const found = new Map(forScopes.all(JSON.stringify(scopes)).map((r) => [r.scope, r.spec]));
      for (const s of scopes) {
        const spec = found.get(s);
        if (spec !== undefined) return { spec, source: s };
      }
      return null;
    },
  };
}
