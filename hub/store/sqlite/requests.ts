import type { Db } from '../../../shared/sqlite.js';
import type { RequestRecords } from '../hub-store.js';

/**
 * Replay keys of signed vessel requests. The primary key makes the first use win: a second INSERT OR
 * IGNORE of the same (vessel, key) changes no row, in this process or another on the same file.
 */
export function sqliteRequests(db: Db): RequestRecords {
  const forget = db.prepare('DELETE FROM vessel_requests WHERE vessel_id = ? AND expires_at <= ?');
  const insert = db.prepare(
    'INSERT OR IGNORE INTO vessel_requests (vessel_id, request_key, expires_at) VALUES (?, ?, ?)',
  );
  return {
    async firstUse(vesselId, key, expiresAt, now) {
      return db.transaction(() => {
        forget.run(vesselId, now);
        return insert.run(vesselId, key, expiresAt).changes === 1;
      })();
    },
  };
}
