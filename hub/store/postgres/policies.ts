import { policyTargets } from '../../../shared/protocol/backup-policy.js';
import { HubStoreError, type PolicyRecord, type PolicyRecords } from '../hub-store.js';
import { isUniqueViolation, type PgAuditWriter, type PgDb } from './pg.js';

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
export function pgPolicies(db: PgDb, audit: PgAuditWriter): PolicyRecords {
  return {
    async publish(p, now, entry) {
      try {
        return await db.tx(
          async (q) => {
            const held = await q.get<{ envelope: Buffer }>(
              'SELECT envelope FROM backup_policies WHERE name = ? AND sequence = ?',
              [p.name, p.sequence],
            );
            if (held) {
              if (Buffer.compare(held.envelope, p.envelope) === 0) {
                await audit(q, entry, now);
                return { created: false };
              }
              throw new HubStoreError(`policy ${p.name} #${p.sequence} exists with other contents`, 'exists', 409);
            }
            const top = (await q.get<{ m: number | null }>(
              'SELECT MAX(sequence) AS m FROM backup_policies WHERE name = ?',
              [p.name],
            ))!.m;
            if (top !== null && p.sequence <= top)
              throw new HubStoreError(
                `policy ${p.name} #${p.sequence} is not above #${top}, the newest the hub holds`,
                'stale_sequence',
                409,
              );
            await q.run(
              `INSERT INTO backup_policies (name, sequence, targets, envelope, published_at, published_by)
               VALUES (?, ?, ?, ?, ?, ?)`,
              [p.name, p.sequence, JSON.stringify(p.targets), p.envelope, now, p.publishedBy],
            );
            await audit(q, entry, now);
            return { created: true };
          },
          { lock: true },
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new HubStoreError(`policy ${p.name} #${p.sequence} exists`, 'exists', 409);
        throw err;
      }
    },
    async list() {
      const rows = await db.all<Row>(
        `SELECT name, sequence, targets, published_at, published_by FROM backup_policies p
         WHERE sequence = (SELECT MAX(sequence) FROM backup_policies q WHERE q.name = p.name) ORDER BY name`,
      );
      return rows.map(fromRow);
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
      for (const r of await db.all<Row & { envelope: Buffer }>(
        'SELECT * FROM backup_policies ORDER BY name, sequence DESC',
      )) {
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
