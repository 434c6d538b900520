import type { Db } from '../../../shared/sqlite.js';
import type { VesselSettings } from '../../../shared/protocol/bodies.js';
import type { SettingsRecord, SettingsRecords } from '../rollout-records.js';
import type { AuditWriter } from './audit.js';
import { parseJson } from './sql.js';

interface Row {
  scope: string;
  settings: string;
  set_at: number;
  set_by: string;
}

/** Download settings per vessel or group; field by field a vessel's own win over its groups'. */
export function sqliteSettings(db: Db, audit: AuditWriter): SettingsRecords {
  const upsert = db.prepare(
    `INSERT INTO vessel_settings (scope, settings, set_at, set_by) VALUES (?, ?, ?, ?)
     ON CONFLICT(scope) DO UPDATE SET settings = excluded.settings, set_at = excluded.set_at, set_by = excluded.set_by`,
  );
  const remove = db.prepare('DELETE FROM vessel_settings WHERE scope = ?');
  const list = db.prepare<[], Row>('SELECT * FROM vessel_settings ORDER BY scope');
  const forScopes = db.prepare<[string], Row>(
    'SELECT * FROM vessel_settings WHERE scope IN (SELECT value FROM json_each(?))',
  );
  const read = (r: Row): VesselSettings => {
    const v = parseJson(r.settings);
    return typeof v === 'object' && v !== null ? (v as VesselSettings) : {};
  };
  return {
    async set(s, now, entry) {
      db.transaction(() => {
        upsert.run(s.scope, JSON.stringify(s.settings), now, s.setBy);
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
      return list
        .all()
        .map((r): SettingsRecord => ({ scope: r.scope, settings: read(r), setAt: r.set_at, setBy: r.set_by }));
    },
    async forVessel(name, groups) {
      const scopes = [`vessel:${name}`, ...[...groups].sort().map((g) => `group:${g}`)];
      const found = new Map(forScopes.all(JSON.stringify(scopes)).map((r) => [r.scope, read(r)]));
      if (found.size === 0) return undefined;
      const out: Record<string, unknown> = {};
      // Later scopes fill only the fields the earlier ones left unset.
      for (const s of scopes)
        for (const [k, v] of Object.entries(found.get(s) ?? {})) if (v !== undefined && !(k in out)) out[k] = v;
      return Object.keys(out).length === 0 ? undefined : (out as VesselSettings);
    },
  };
}
