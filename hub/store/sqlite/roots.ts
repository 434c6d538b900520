import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type RootRecord, type RootRecords } from '../hub-store.js';
import type { AuditWriter } from './audit.js';

interface Row {
  version: number;
  envelope: Buffer;
  expires: string;
  added_at: number;
}
const fromRow = (r: Row): RootRecord => ({
  version: r.version,
  envelope: r.envelope,
  expires: r.expires,
  addedAt: r.added_at,
});

export function sqliteRoots(db: Db, audit: AuditWriter): RootRecords {
  const latest = db.prepare<[], Row>('SELECT * FROM roots ORDER BY version DESC LIMIT 1');
  const byVersion = db.prepare<[number], Row>('SELECT * FROM roots WHERE version = ?');
  const insert = db.prepare('INSERT INTO roots (version, envelope, expires, added_at) VALUES (?, ?, ?, ?)');
  const list = db.prepare<[], Omit<Row, 'envelope'>>('SELECT version, expires, added_at FROM roots ORDER BY version');
  return {
    async latest() {
      const r = latest.get();
      return r && fromRow(r);
    },
    async get(version) {
      return byVersion.get(version)?.envelope;
    },
    async list() {
      return list.all().map((r) => ({ version: r.version, expires: r.expires, addedAt: r.added_at }));
    },
    async add(r, now, entry) {
      return db
        .transaction(() => {
          const same = byVersion.get(r.version);
          if (same) {
            if (!same.envelope.equals(r.envelope))
              throw new HubStoreError(`root v${r.version} exists with other contents`, 'root_conflict', 409);
            audit(entry, now);
            return { created: false };
          }
          const current = latest.get()?.version;
          if (current !== undefined && r.version <= current)
            throw new HubStoreError(
              `root v${r.version} is not newer than the hub's root v${current}`,
              'stale_root',
              409,
            );
          if (current !== undefined && r.version !== current + 1)
            throw new HubStoreError(`root v${r.version} offered where v${current + 1} is next`, 'root_gap', 409);
          insert.run(r.version, r.envelope, r.expires, now);
          audit(entry, now);
          return { created: true };
        })
        .immediate();
    },
  };
}
