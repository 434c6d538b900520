import { HubStoreError, type EnrolmentRecords, type NewEnrolmentToken } from '../hub-store.js';
import type { PgAuditWriter, PgDb, Queryable } from './pg.js';
import { rekeyed } from '../rekey-audit.js';

/** Writes a token row inside the caller's transaction (vessel creation adds the first one). */
export type PgTokenWriter = (q: Queryable, vesselId: string, token: NewEnrolmentToken, now: number) => Promise<void>;

const INSERT =
  'INSERT INTO enrolment_tokens (token_hash, vessel_id, kind, created_at, expires_at, rekey) VALUES (?, ?, ?, ?, ?, ?)';
// Every other unused token of the vessel: a re-key, and any enrolment, leaves exactly one way in.
const CANCEL_OTHERS =
  'UPDATE enrolment_tokens SET expires_at = 0 WHERE vessel_id = ? AND token_hash != ? AND used_at IS NULL ' +
  'AND expires_at > ?';

const refused = (message: string, code: string, status: number) => new HubStoreError(message, code, status);

/**
 * Enrolment tokens on PostgreSQL. Issue and claim read before they write, so they run under the store's
 * write lock (pg.ts): of claims racing from any number of hub processes one finds the token unused.
 * The claim's UPDATE is guarded by used_at IS NULL as well, so even without the lock one row changes.
 */
export function pgEnrolment(db: PgDb, audit: PgAuditWriter): { records: EnrolmentRecords; insertToken: PgTokenWriter } {
  const insertToken: PgTokenWriter = async (q, vesselId, t, now) => {
    await q.run(INSERT, [t.tokenHash, vesselId, t.kind, now, t.expiresAt, t.rekey ? 1 : 0]);
  };
  return {
    insertToken,
    records: {
      async issue(vesselId, token, now, entry) {
        return db.tx(
          async (q) => {
            const v = await q.get<{ revoked_at: number | null; public_key: string | null }>(
              'SELECT revoked_at, public_key FROM vessels WHERE id = ?',
              [vesselId],
            );
            if (!v) throw refused(`no vessel ${vesselId}`, 'not_found', 404);
            if (v.revoked_at !== null) throw refused(`vessel ${vesselId} is revoked`, 'revoked', 409);
            if (v.public_key !== null && !token.rekey)
              throw refused(`vessel ${vesselId} is enrolled: replacing its key needs a re-key token`, 'enrolled', 409);
            await insertToken(q, vesselId, token, now);
            const tokensCancelled = token.rekey ? await q.run(CANCEL_OTHERS, [vesselId, token.tokenHash, now]) : 0;
            await audit(q, entry, now);
            return { tokensCancelled };
          },
          { lock: true },
        );
      },
      async claim(c, now) {
        return db.tx(
          async (q) => {
            const row = await q.get<{
              vessel_id: string;
              used_at: number | null;
              expires_at: number;
              rekey: number;
              public_key: string | null;
            }>(
              `SELECT t.vessel_id, t.used_at, t.expires_at, t.rekey, v.public_key
               FROM enrolment_tokens t JOIN vessels v ON v.id = t.vessel_id WHERE t.token_hash = ?`,
              [c.tokenHash],
            );
            if (!row) throw refused('enrolment token is not valid', 'bad_token', 401);
            if (row.used_at !== null) throw refused('enrolment token was already used', 'token_used', 409);
            if (row.expires_at <= now) throw refused('enrolment token has expired', 'token_expired', 401);
            if (row.public_key !== null && !row.rekey)
              throw refused('vessel is already enrolled; re-keying it needs an admin re-key token', 'enrolled', 409);
            const claimed = await q.run(
              'UPDATE enrolment_tokens SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL ' +
                'AND expires_at > ?',
              [now, c.address, c.tokenHash, now],
            );
            if (claimed !== 1) throw refused('enrolment token was already used', 'token_used', 409);
            const keyed = await q.run(
              'UPDATE vessels SET public_key = ?, enrolled_at = ? WHERE id = ? AND revoked_at IS NULL',
              [c.publicKey, now, row.vessel_id],
            );
            if (keyed !== 1) throw refused('vessel was revoked', 'revoked', 401);
            await q.run(CANCEL_OTHERS, [row.vessel_id, c.tokenHash, now]);
            if (row.public_key !== null) await audit(q, rekeyed(row.vessel_id, row.public_key, c), now);
            return row.vessel_id;
          },
          { lock: true },
        );
      },
    },
  };
}
