import type { Db } from '../../../shared/sqlite.js';
import type { DirectiveRecords, StoredDirective } from '../rollout-records.js';

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
export function sqliteDirectives(db: Db): DirectiveRecords {
  const max = db.prepare<[string], { n: number | null }>(
    'SELECT MAX(counter) AS n FROM rollback_directives WHERE app = ?',
  );
  const live = db.prepare<[number, number], Row>(
    'SELECT * FROM rollback_directives WHERE expires_at > ? ORDER BY id DESC LIMIT ?',
  );
  const byId = db.prepare<[number], Row>('SELECT * FROM rollback_directives WHERE id = ?');
  return {
    async nextCounter(app) {
      return (max.get(app)!.n ?? 0) + 1;
    },
    async live(now, limit) {
      return live.all(now, limit).map(fromRow);
    },
    async get(id) {
      const r = byId.get(id);
      return r && fromRow(r);
    },
  };
}
