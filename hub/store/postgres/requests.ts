import type { RequestRecords } from '../hub-store.js';
import type { PgDb } from './pg.js';

/**
 * Replay keys of signed vessel requests. The primary key makes the first use win: of two hubs inserting
 * one (vessel, key) at once the second waits on the first's row and then inserts nothing.
 */
export function pgRequests(db: PgDb): RequestRecords {
  return {
    async firstUse(vesselId, key, expiresAt, now) {
      return db.tx(async (q) => {
        await q.run('DELETE FROM vessel_requests WHERE vessel_id = ? AND expires_at <= ?', [vesselId, now]);
        const n = await q.run(
          'INSERT INTO vessel_requests (vessel_id, request_key, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
          [vesselId, key, expiresAt],
        );
        return n === 1;
      });
    },
  };
}
