import type { Db } from '../../../shared/sqlite.js';
import { policyTargets } from '../../../shared/protocol/backup-policy.js';
import { HubStoreError, type PolicyRecord, type PolicyRecords } from '../hub-store.js';
import type { AuditWriter } from './audit.js';
import { isUniqueViolation } from './sql.js';

interface Row {
  name: string;
  sequence: number;
  targets: string;
  published_at: number;
  published_by: string;
}
const fromRow = (r: Row): PolicyRecord => ({
  name: r.name,
  sequence: r.sequence,
  targets: JSON.parse(r.targets) as string[],
  publishedAt: r.published_at,
  publishedBy: r.published_by,
});

/** Backup policies: every published sequence kept, the newest per name is the one in force. */
export function sqlitePolicies(db: Db, audit: AuditWriter): PolicyRecords {
  const insert = db.prepare(
    `INSERT INTO backup_policies (name, sequence, targets, envelope, published_at, published_by)
     VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const same = db.prepare<[string, number], { envelope: Buffer }>(
    'SELECT envelope FROM backup_policies WHERE name = ? AND sequence = ?',
  );
  const newest = db.prepare<[string], { m: number | null }>(
    'SELECT MAX(sequence) AS m FROM backup_policies WHERE name = ?',
  );
  const SELECT = 'SELECT name, sequence, targets, published_at, published_by FROM backup_policies';
  const current = db.prepare<[], Row>(
    `${SELECT} p WHERE sequence = (SELECT MAX(sequence) FROM backup_policies q WHERE q.name = p.name) ORDER BY name`,
  );
  const all = db.prepare<[], Row & { envelope: Buffer }>('SELECT * FROM backup_policies ORDER BY name, sequence DESC');
  return {
    async publish(p, now, entry) {
      return db
        .transaction(() => {
          const held = same.get(p.name, p.sequence);
          if (held) {
            if (Buffer.compare(held.envelope, p.envelope) === 0) {
              audit(entry, now);
              return { created: false };
            }
            throw new HubStoreError(`policy ${p.name} #${p.sequence} exists with other contents`, 'exists', 409);
          }
          const top = newest.get(p.name)!.m;
          if (top !== null && p.sequence <= top)
            throw new HubStoreError(
              `policy ${p.name} #${p.sequence} is not above #${top}, the newest the hub holds`,
              'stale_sequence',
              409,
            );
          try {
            insert.run(p.name, p.sequence, JSON.stringify(p.targets), p.envelope, now, p.publishedBy);
          } catch (err) {
            if (isUniqueViolation(err))
              throw new HubStoreError(`policy ${p.name} #${p.sequence} exists`, 'exists', 409);
            throw err;
          }
          audit(entry, now);
          return { created: true };
        })
        .immediate();
    },
    async list() {
      return current.all().map(fromRow);
    },
    async forVessel(v) {
      // A fleet has tens of policies, not thousands: matching targets here is cheaper than in SQL.
      const out: { name: string; envelope: Buffer }[] = [];
      let name: string | undefined;
      let head: (Row & { envelope: Buffer }) | undefined;
      let named = false;
      const flush = () => {
        if (head && named) out.push({ name: head.name, envelope: head.envelope });
      };
      for (const r of all.all()) {
        if (r.name !== name) {
          flush();
          name = r.name;
          head = r;
          named = false;
        }
        if (policyTargets(JSON.parse(r.targets) as string[], v)) named = true;
      }
      flush();
      return out;
    },
  };
}
