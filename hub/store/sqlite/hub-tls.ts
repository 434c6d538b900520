import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type HubTlsRecord, type HubTlsRecords } from '../hub-store.js';
import type { AuditWriter } from './audit.js';
import { isUniqueViolation } from './sql.js';

interface Row {
  sequence: number;
  envelope: Buffer;
  published_at: number;
  published_by: string;
}
const fromRow = (r: Row): HubTlsRecord => ({
  sequence: r.sequence,
  envelope: r.envelope,
  publishedAt: r.published_at,
  publishedBy: r.published_by,
});

/** Hub TLS announcements: every published sequence kept; the newest is in force. */
export function sqliteHubTls(db: Db, audit: AuditWriter): HubTlsRecords {
  const insert = db.prepare('INSERT INTO hub_tls (sequence, envelope, published_at, published_by) VALUES (?, ?, ?, ?)');
  const bySequence = db.prepare<[number], { envelope: Buffer }>('SELECT envelope FROM hub_tls WHERE sequence = ?');
  const newest = db.prepare<[], Row>('SELECT * FROM hub_tls ORDER BY sequence DESC LIMIT 1');
  return {
    async publish(a, now, entry) {
      return db
        .transaction(() => {
          const held = bySequence.get(a.sequence);
          if (held) {
            if (Buffer.compare(held.envelope, a.envelope) !== 0)
              throw new HubStoreError(`hub-tls #${a.sequence} exists with other contents`, 'exists', 409);
            audit(entry, now);
            return { created: false };
          }
          const top = newest.get();
          if (top && a.sequence <= top.sequence)
            throw new HubStoreError(
              `hub-tls #${a.sequence} is not above #${top.sequence}, the newest the hub holds`,
              'stale_sequence',
              409,
            );
          try {
            insert.run(a.sequence, a.envelope, now, a.publishedBy);
          } catch (err) {
            if (isUniqueViolation(err)) throw new HubStoreError(`hub-tls #${a.sequence} exists`, 'exists', 409);
            throw err;
          }
          audit(entry, now);
          return { created: true };
        })
        .immediate();
    },
    async latest() {
      const r = newest.get();
      return r && fromRow(r);
    },
  };
}
