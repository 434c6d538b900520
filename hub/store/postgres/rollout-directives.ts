import type { DirectiveRecords, StoredDirective } from '../rollout-records.js';
import type { PgDb } from './pg.js';

interface Row {
  id: number;
  app: string;
  version: string;
  counter: number;
  envelope: Buffer;
  targets: string;
  expires_at: number;
  created_at: number;
}
const fromRow = (r: Row): StoredDirective => ({
  id: r.id,
  app: r.app,
  version: r.version,
  counter: r.counter,
  envelope: r.envelope,
  targets: JSON.parse(r.targets) as StoredDirective['targets'],
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

/** Signed rollback directives as uploaded (they are stored with their rollout, in rollouts.ts). */
export function pgDirectives(db: PgDb): DirectiveRecords {
  return {
    async nextCounter(app) {
      const r = await db.get<{ n: number | null }>('SELECT MAX(counter) AS n FROM rollback_directives WHERE app = ?', [
        app,
      ]);
      return (r!.n ?? 0) + 1;
    },
    async live(now, limit) {
      return (
        await db.all<Row>('SELECT * FROM rollback_directives WHERE expires_at > ? ORDER BY id DESC LIMIT ?', [
          now,
          limit,
        ])
      ).map(fromRow);
    },
    async get(id) {
      const r = await db.get<Row>('SELECT * FROM rollback_directives WHERE id = ?', [id]);
      return r && fromRow(r);
    },
  };
}
