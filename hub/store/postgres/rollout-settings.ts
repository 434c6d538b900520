import type { VesselSettings } from '../../../shared/protocol/bodies.js';
import type { SettingsRecord, SettingsRecords } from '../rollout-records.js';
import type { PgAuditWriter, PgDb } from './pg.js';

interface Row {
  scope: string;
  settings: string;
  set_at: number;
  set_by: string;
}

const read = (r: Row): VesselSettings => {
  try {
    const v = JSON.parse(r.settings) as unknown;
    return typeof v === 'object' && v !== null ? (v as VesselSettings) : {};
  } catch {
    return {};
  }
};

/** Download settings per vessel or group (as sqlite/rollout-settings.ts); field by field a vessel's own win. */
export function pgSettings(db: PgDb, audit: PgAuditWriter): SettingsRecords {
  return {
    async set(s, now, entry) {
      await db.tx(async (q) => {
        await q.run(
          `INSERT INTO vessel_settings (scope, settings, set_at, set_by) VALUES (?, ?, ?, ?)
           ON CONFLICT (scope) DO UPDATE SET settings = excluded.settings, set_at = excluded.set_at,
             set_by = excluded.set_by`,
          [s.scope, JSON.stringify(s.settings), now, s.setBy],
        );
        await audit(q, entry, now);
      });
    },
    async clear(scope, now, entry) {
      return db.tx(async (q) => {
        const gone = (await q.run('DELETE FROM vessel_settings WHERE scope = ?', [scope])) === 1;
        if (gone) await audit(q, entry, now);
        return gone;
      });
    },
    async list() {
      return (await db.all<Row>('SELECT * FROM vessel_settings ORDER BY scope')).map((r): SettingsRecord => ({
        scope: r.scope,
        settings: read(r),
        setAt: r.set_at,
        setBy: r.set_by,
      }));
    },
    async forVessel(name, groups) {
      const scopes = [`vessel:${name}`, ...[...groups].sort().map((g) => `group:${g}`)];
      const rows = await db.all<Row>('SELECT * FROM vessel_settings WHERE scope = ANY(?::text[])', [scopes]);
      if (rows.length === 0) return undefined;
      const found = new Map(rows.map((r) => [r.scope, read(r)]));
      const out: Record<string, unknown> = {};
      for (const s of scopes)
        for (const [k, v] of Object.entries(found.get(s) ?? {})) if (v !== undefined && !(k in out)) out[k] = v;
      return Object.keys(out).length === 0 ? undefined : (out as VesselSettings);
    },
  };
}
