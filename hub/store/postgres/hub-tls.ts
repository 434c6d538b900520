import { HubStoreError, type HubTlsRecord, type HubTlsRecords } from '../hub-store.js';
import { isUniqueViolation, type PgAuditWriter, type PgDb } from './pg.js';

interface Row {
  sequence: string | number;
  envelope: Buffer;
  published_at: string | number;
  published_by: string;
}
const fromRow = (r: Row): HubTlsRecord => ({
  sequence: Number(r.sequence),
  envelope: r.envelope,
  publishedAt: Number(r.published_at),
  publishedBy: r.published_by,
});

/** Hub TLS announcements: every published sequence kept; the newest is in force. */
export function pgHubTls(db: PgDb, audit: PgAuditWriter): HubTlsRecords {
  return {
    async publish(a, now, entry) {
      try {
        return await db.tx(
          async (q) => {
            const held = await q.get<{ envelope: Buffer }>('SELECT envelope FROM hub_tls WHERE sequence = ?', [
              a.sequence,
            ]);
            if (held) {
              if (Buffer.compare(held.envelope, a.envelope) !== 0)
                throw new HubStoreError(`hub-tls #${a.sequence} exists with other contents`, 'exists', 409);
              await audit(q, entry, now);
              return { created: false };
            }
            const top = await q.get<Row>('SELECT * FROM hub_tls ORDER BY sequence DESC LIMIT 1');
            if (top && a.sequence <= Number(top.sequence))
              throw new HubStoreError(
                `hub-tls #${a.sequence} is not above #${top.sequence}, the newest the hub holds`,
                'stale_sequence',
                409,
              );
            await q.run('INSERT INTO hub_tls (sequence, envelope, published_at, published_by) VALUES (?, ?, ?, ?)', [
              a.sequence,
              a.envelope,
              now,
              a.publishedBy,
            ]);
            await audit(q, entry, now);
            return { created: true };
          },
          { lock: true },
        );
      } catch (err) {
        if (isUniqueViolation(err)) throw new HubStoreError(`hub-tls #${a.sequence} exists`, 'exists', 409);
        throw err;
      }
    },
    async latest() {
      const r = await db.get<Row>('SELECT * FROM hub_tls ORDER BY sequence DESC LIMIT 1');
      return r && fromRow(r);
    },
  };
}
