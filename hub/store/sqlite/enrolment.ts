import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type EnrolmentRecords, type NewEnrolmentToken } from '../hub-store.js';
import type { AuditWriter } from './audit.js';
import { rekeyed } from '../rekey-audit.js';

/** Writes a token row inside the caller's transaction (vessel creation adds the first one). */
export type TokenWriter = (vesselId: string, token: NewEnrolmentToken, now: number) => void;

export function sqliteEnrolment(db: Db, audit: AuditWriter): { records: EnrolmentRecords; insertToken: TokenWriter } {
  const insert = db.prepare(
    'INSERT INTO enrolment_tokens (token_hash, vessel_id, kind, created_at, ' +
      'expires_at, rekey) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const vesselState = db.prepare<[string], { revoked_at: number | null; public_key: string | null }>(
    'SELECT revoked_at, public_key FROM vessels WHERE id = ?',
  );
  const find = db.prepare<
    [string],
    { vessel_id: string; used_at: number | null; expires_at: number; rekey: number; public_key: string | null }
  >(
    `SELECT t.vessel_id, t.used_at, t.expires_at, t.rekey, v.public_key
     FROM enrolment_tokens t JOIN vessels v ON v.id = t.vessel_id WHERE t.token_hash = ?`,
  );
  // Every other unused token of the vessel: a re-key, and any enrolment, leaves exactly one way in.
  const cancelOthers = db.prepare(
    'UPDATE enrolment_tokens SET expires_at = 0 WHERE vessel_id = ? AND token_hash ' +
      '!= ? AND used_at IS NULL AND expires_at > ?',
  );
  // The WHERE clause makes the claim atomic: of two enrolments racing on one token exactly one changes a row.
  const claim = db.prepare(
    'UPDATE enrolment_tokens SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?',
  );
  const setKey = db.prepare('UPDATE vessels SET public_key = ?, enrolled_at = ? WHERE id = ? AND revoked_at IS NULL');

  const insertToken: TokenWriter = (vesselId, t, now) => {
    insert.run(t.tokenHash, vesselId, t.kind, now, t.expiresAt, t.rekey ? 1 : 0);
  };
  const refused = (message: string, code: string, status: number) => new HubStoreError(message, code, status);

  return {
    insertToken,
    records: {
      async issue(vesselId, token, now, entry) {
        return db
          .transaction(() => {
            const v = vesselState.get(vesselId);
            if (!v) throw refused(`no vessel ${vesselId}`, 'not_found', 404);
            if (v.revoked_at !== null) throw refused(`vessel ${vesselId} is revoked`, 'revoked', 409);
            if (v.public_key !== null && !token.rekey)
              throw refused(`vessel ${vesselId} is enrolled: replacing its key needs a re-key token`, 'enrolled', 409);
            insertToken(vesselId, token, now);
            const tokensCancelled = token.rekey ? cancelOthers.run(vesselId, token.tokenHash, now).changes : 0;
            audit(entry, now);
            return { tokensCancelled };
          })
          .immediate();
      },
      async claim(c, now) {
        // IMMEDIATE takes the write lock before reading, so another process cannot slip in between.
        return db
          .transaction(() => {
            const row = find.get(c.tokenHash);
            if (!row) throw refused('enrolment token is not valid', 'bad_token', 401);
            if (row.used_at !== null) throw refused('enrolment token was already used', 'token_used', 409);
            if (row.expires_at <= now) throw refused('enrolment token has expired', 'token_expired', 401);
            if (row.public_key !== null && !row.rekey)
              throw refused('vessel is already enrolled; re-keying it needs an admin re-key token', 'enrolled', 409);
            if (claim.run(now, c.address, c.tokenHash, now).changes !== 1)
              throw refused('enrolment token was already used', 'token_used', 409);
            if (setKey.run(c.publicKey, now, row.vessel_id).changes !== 1)
              throw refused('vessel was revoked', 'revoked', 401);
            cancelOthers.run(row.vessel_id, c.tokenHash, now);
            if (row.public_key !== null) audit(rekeyed(row.vessel_id, row.public_key, c), now);
            return row.vessel_id;
          })
          .immediate();
      },
    },
  };
}
