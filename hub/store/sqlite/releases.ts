import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type ReleaseRecords, type StoredRelease } from '../hub-store.js';
import type { AuditWriter } from './audit.js';

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

export function sqliteReleases(db: Db, audit: AuditWriter): ReleaseRecords {
  const insert = db.prepare(
    'INSERT INTO releases (app, version, sequence, envelope, created_at, published_by) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const byVersion = db.prepare<[string, string], Row & { envelope: Buffer }>(
    'SELECT * FROM releases WHERE app = ? AND version = ?',
  );
  const byVersionAnyApp = db.prepare<[string], Row>(`SELECT ${COLUMNS} FROM releases WHERE version = ? ORDER BY app`);
  const maxSeq = db.prepare<[string], { s: number | null }>('SELECT MAX(sequence) AS s FROM releases WHERE app = ?');
  const byId = db.prepare<[number], Row>(`SELECT ${COLUMNS} FROM releases WHERE id = ?`);
  const envelope = db.prepare<[number], { envelope: Buffer }>('SELECT envelope FROM releases WHERE id = ?');
  const list = db.prepare<[number], Row>(`SELECT ${COLUMNS} FROM releases ORDER BY app, sequence DESC LIMIT ?`);
  const listApp = db.prepare<[string, number], Row>(
    `SELECT ${COLUMNS} FROM releases WHERE app = ? ORDER BY sequence DESC LIMIT ?`,
  );

  const add = db.transaction(
    (r: Parameters<ReleaseRecords['add']>[0], now: number, entry: Parameters<ReleaseRecords['add']>[2]) => {
      const existing = byVersion.get(r.app, r.version);
      if (existing) {
        if (!existing.envelope.equals(r.envelope))
          throw new HubStoreError(
            `release ${r.app} ${r.version} already exists with different contents`,
            'exists',
            409,
          );
        audit(entry, now);
        return { release: fromRow(existing), created: false };
      }
      const max = maxSeq.get(r.app)?.s ?? 0;
      if (r.sequence <= max)
        throw new HubStoreError(
          `release ${r.app} ${r.version} has sequence ${r.sequence}, not above the latest (${max})`,
          'stale_sequence',
          409,
        );
      const id = Number(insert.run(r.app, r.version, r.sequence, r.envelope, now, r.publishedBy).lastInsertRowid);
      audit(entry, now);
      return { release: fromRow(byId.get(id)!), created: true };
    },
  );

  return {
    async add(r, now, entry) {
      // IMMEDIATE: the write lock is taken before the checks, so no other process can publish in between.
      return add.immediate(r, now, entry);
    },
    async get(id) {
      const r = byId.get(id);
      return r && fromRow(r);
    },
    async find(ref) {
      const at = ref.indexOf('@');
      if (at > 0) {
        const r = byVersion.get(ref.slice(0, at), ref.slice(at + 1));
        return r && fromRow(r);
      }
      const rows = byVersionAnyApp.all(ref);
      if (rows.length > 1)
        throw new HubStoreError(
          `version ${ref} exists for several apps (${rows.map((r) => r.app).join(', ')}); write APP@VERSION`,
          'ambiguous',
          400,
        );
      return rows[0] && fromRow(rows[0]);
    },
    async envelope(id) {
      return envelope.get(id)?.envelope;
    },
    async nextSequence(app) {
      return (maxSeq.get(app)?.s ?? 0) + 1;
    },
    async list(q) {
      return (q.app === undefined ? list.all(q.limit) : listApp.all(q.app, q.limit)).map(fromRow);
    },
  };
}
