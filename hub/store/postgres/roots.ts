import { HubStoreError, type RootRecord, type RootRecords } from '../hub-store.js';
import type { PgAuditWriter, PgDb } from './pg.js';

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

export function pgRoots(db: PgDb, audit: PgAuditWriter): RootRecords {
  const LATEST = 'SELECT * FROM roots ORDER BY version DESC LIMIT 1';
  return {
    async latest() {
      const r = await db.get<Row>(LATEST);
      return r && fromRow(r);
    },
    async get(version) {
      return (await db.get<Row>('SELECT envelope FROM roots WHERE version = ?', [version]))?.envelope;
    },
    async list() {
      const rows = await db.all<Omit<Row, 'envelope'>>('SELECT version, expires, added_at FROM roots ORDER BY version');
      return rows.map((r) => ({ version: r.version, expires: r.expires, addedAt: r.added_at }));
    },
    async add(r, now, entry) {
      // Under the write lock: "exactly latest + 1" is checked and written with no other hub in between.
      return db.tx(
        async (q) => {
          const same = await q.get<Row>('SELECT * FROM roots WHERE version = ?', [r.version]);
          if (same) {
            if (!same.envelope.equals(r.envelope))
              throw new HubStoreError(`root v${r.version} exists with other contents`, 'root_conflict', 409);
            await audit(q, entry, now);
            return { created: false };
          }
          const current = (await q.get<Row>(LATEST))?.version;
          if (current !== undefined && r.version <= current)
            throw new HubStoreError(
              `root v${r.version} is not newer than the hub's root v${current}`,
              'stale_root',
              409,
            );
          if (current !== undefined && r.version !== current + 1)
            throw new HubStoreError(`root v${r.version} offered where v${current + 1} is next`, 'root_gap', 409);
          await q.run('INSERT INTO roots (version, envelope, expires, added_at) VALUES (?, ?, ?, ?)', [
            r.version,
            r.envelope,
            r.expires,
            now,
          ]);
          await audit(q, entry, now);
          return { created: true };
        },
        { lock: true },
      );
    },
  };
}
