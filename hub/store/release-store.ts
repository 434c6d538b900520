import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { verifyManifest } from '../../shared/protocol/manifest.js';

export class ReleaseStoreError extends TenderError {}

export interface StoredRelease {
  id: number;
  app: string;
  version: string;
  sequence: number;
  createdAt: number;
  publishedBy: string;
}

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

export type ReleaseStore = ReturnType<typeof createReleaseStore>;

export function createReleaseStore(db: Db) {
  const insert = db.prepare(
    'INSERT INTO releases (app, version, sequence, envelope, created_at, published_by) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const byVersion = db.prepare<[string, string], Row & { envelope: Buffer }>(
    'SELECT * FROM releases WHERE app = ? AND version = ?',
  );
  const byVersionAnyApp = db.prepare<[string], Row>('SELECT * FROM releases WHERE version = ?');
  const maxSeq = db.prepare<[string], { s: number | null }>('SELECT MAX(sequence) AS s FROM releases WHERE app = ?');
  const list = db.prepare<[number], Row>(
    'SELECT id, app, version, sequence, created_at, published_by FROM releases ORDER BY app, sequence DESC LIMIT ?',
  );
  const envelope = db.prepare<[number], { envelope: Buffer }>('SELECT envelope FROM releases WHERE id = ?');
  const byId = db.prepare<[number], Row>('SELECT * FROM releases WHERE id = ?');

  return {
    add(
      root: TrustedRoot,
      bytes: Buffer,
      publishedBy: string,
      now = Date.now(),
    ): { release: StoredRelease; created: boolean } {
      const m = verifyManifest(root, bytes);
      return db.transaction(() => {
        const existing = byVersion.get(m.app, m.version);
        if (existing) {
          if (existing.envelope.equals(bytes)) return { release: fromRow(existing), created: false };
          throw new ReleaseStoreError(
            `release ${m.app} ${m.version} already exists with different contents`,
            'exists',
            1,
            409,
          );
        }
        const max = maxSeq.get(m.app)?.s ?? 0;
        if (m.sequence <= max) {
          throw new ReleaseStoreError(
            `release ${m.app} ${m.version} has sequence ${m.sequence}, not above the latest (${max})`,
            'stale_sequence',
            1,
            409,
          );
        }
        const id = Number(insert.run(m.app, m.version, m.sequence, bytes, now, publishedBy).lastInsertRowid);
        return { release: fromRow(byId.get(id)!), created: true };
      })();
    },
    /** "app@version", or a bare version when only one app has it. */
    find(ref: string): StoredRelease | undefined {
      const at = ref.indexOf('@');
      if (at > 0) {
        const r = byVersion.get(ref.slice(0, at), ref.slice(at + 1));
        return r && fromRow(r);
      }
      const rows = byVersionAnyApp.all(ref);
      if (rows.length > 1)
        throw new ReleaseStoreError(
          `version ${ref} exists for several apps (${rows.map((r) => r.app).join(', ')}); write APP@VERSION`,
          'ambiguous',
          1,
          400,
        );
      return rows[0] && fromRow(rows[0]);
    },
    get(id: number): StoredRelease | undefined {
      const r = byId.get(id);
      return r && fromRow(r);
    },
    envelope(id: number): Buffer | undefined {
      return envelope.get(id)?.envelope;
    },
    nextSequence(app: string): number {
      return (maxSeq.get(app)?.s ?? 0) + 1;
    },
    list(limit = 200): StoredRelease[] {
      return list.all(limit).map(fromRow);
    },
  };
}
