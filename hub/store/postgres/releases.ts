import { HubStoreError, type ReleaseRecords, type StoredRelease } from '../hub-store.js';
import type { PgAuditWriter, PgDb } from './pg.js';

interface Row {
  id: number;
  app: string;
  version: string;
  sequence: number;
  created_at: number;
  published_by: string;
}
const fromRow = (r: Row): StoredRelease => ({
  id: r.id,
  app: r.app,
  version: r.version,
  sequence: r.sequence,
  createdAt: r.created_at,
  publishedBy: r.published_by,
});
const COLUMNS = 'id, app, version, sequence, created_at, published_by';
const MAX_SEQ = 'SELECT MAX(sequence) AS s FROM releases WHERE app = ?';

export function pgReleases(db: PgDb, audit: PgAuditWriter): ReleaseRecords {
  const byVersion = async (app: string, version: string) =>
    db.get<Row>(`SELECT ${COLUMNS} FROM releases WHERE app = ? AND version = ?`, [app, version]);
  return {
    async add(r, now, entry) {
      // Under the write lock: "above every stored sequence" is checked and written with no other hub between.
      return db.tx(
        async (q) => {
          const existing = await q.get<Row & { envelope: Buffer }>(
            'SELECT * FROM releases WHERE app = ? AND version = ?',
            [r.app, r.version],
          );
          if (existing) {
            if (!existing.envelope.equals(r.envelope))
              throw new HubStoreError(
                `release ${r.app} ${r.version} already exists with different contents`,
                'exists',
                409,
              );
            await audit(q, entry, now);
            return { release: fromRow(existing), created: false };
          }
          const max = (await q.get<{ s: number | null }>(MAX_SEQ, [r.app]))?.s ?? 0;
          if (r.sequence <= max)
            throw new HubStoreError(
              `release ${r.app} ${r.version} has sequence ${r.sequence}, not above the latest (${max})`,
              'stale_sequence',
              409,
            );
          const row = (await q.get<Row>(
            `INSERT INTO releases (app, version, sequence, envelope, created_at, published_by)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING ${COLUMNS}`,
            [r.app, r.version, r.sequence, r.envelope, now, r.publishedBy],
          ))!;
          await audit(q, entry, now);
          return { release: fromRow(row), created: true };
        },
        { lock: true },
      );
    },
    async get(id) {
      const r = await db.get<Row>(`SELECT ${COLUMNS} FROM releases WHERE id = ?`, [id]);
      return r && fromRow(r);
    },
    async find(ref) {
      const at = ref.indexOf('@');
      if (at > 0) {
        const r = await byVersion(ref.slice(0, at), ref.slice(at + 1));
        return r && fromRow(r);
      }
      const rows = await db.all<Row>(`SELECT ${COLUMNS} FROM releases WHERE version = ? ORDER BY app`, [ref]);
      if (rows.length > 1)
        throw new HubStoreError(
          `version ${ref} exists for several apps (${rows.map((r) => r.app).join(', ')}); write APP@VERSION`,
          'ambiguous',
          400,
        );
      return rows[0] && fromRow(rows[0]);
    },
    async envelope(id) {
      return (await db.get<{ envelope: Buffer }>('SELECT envelope FROM releases WHERE id = ?', [id]))?.envelope;
    },
    async nextSequence(app) {
      return ((await db.get<{ s: number | null }>(MAX_SEQ, [app]))?.s ?? 0) + 1;
    },
    async list(q) {
      const rows =
        q.app === undefined
          ? await db.all<Row>(`SELECT ${COLUMNS} FROM releases ORDER BY app, sequence DESC LIMIT ?`, [q.limit])
          : await db.all<Row>(`SELECT ${COLUMNS} FROM releases WHERE app = ? ORDER BY sequence DESC LIMIT ?`, [
              q.app,
              q.limit,
            ]);
      return rows.map(fromRow);
    },
  };
}
