import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import { newSecret, sha256Hex } from '../../shared/trust/secrets.js';
import { formatEnrolmentToken } from '../../shared/protocol/enrolment-token.js';
import type { Vessel } from './vessel-store.js';

export class EnrolmentError extends TenderError {}

// A week for a token sent to a ship in port; an offline file travels by post or USB stick and may wait
// at sea for a quarter before the vessel first sees a link.
export const ONLINE_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;
export const OFFLINE_TOKEN_TTL_MS = 90 * 24 * 3600 * 1000;

export { parseEnrolmentToken } from '../../shared/protocol/enrolment-token.js';

export type EnrolmentStore = ReturnType<typeof createEnrolmentStore>;

export function createEnrolmentStore(db: Db) {
  const insert = db.prepare(
    'INSERT INTO enrolment_tokens (token_hash, vessel_id, kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
  );
  // The WHERE clause makes the claim atomic: of two enrolments racing on one token exactly one changes a row.
  const claim = db.prepare(
    'UPDATE enrolment_tokens SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?',
  );
  const find = db.prepare<[string], { vessel_id: string; used_at: number | null; expires_at: number }>(
    'SELECT vessel_id, used_at, expires_at FROM enrolment_tokens WHERE token_hash = ?',
  );
  const setKey = db.prepare('UPDATE vessels SET public_key = ?, enrolled_at = ? WHERE id = ? AND revoked_at IS NULL');
  const cancel = db.prepare('UPDATE enrolment_tokens SET expires_at = 0 WHERE vessel_id = ? AND used_at IS NULL');

  return {
    issue(
      vessel: Vessel,
      kind: 'online' | 'offline',
      ttlMs: number,
      root: { version: number; bytes: Buffer },
      now = Date.now(),
    ) {
      const secret = newSecret();
      const expiresAt = now + ttlMs;
      insert.run(sha256Hex(secret), vessel.id, kind, now, expiresAt);
      return { token: formatEnrolmentToken(secret, root.version, root.bytes), expiresAt };
    },
    /** Claims the token and records the vessel's public key in one transaction; returns the vessel id. */
    enrol(secret: string, publicKey: string, address: string, now = Date.now()): string {
      const hash = sha256Hex(secret);
      return db
        .transaction(() => {
          const row = find.get(hash);
          if (!row) throw new EnrolmentError('enrolment token is not valid', 'bad_token', 1, 401);
          if (row.used_at !== null) throw new EnrolmentError('enrolment token was already used', 'token_used', 1, 409);
          if (row.expires_at <= now) throw new EnrolmentError('enrolment token has expired', 'token_expired', 1, 401);
          if (claim.run(now, address, hash, now).changes !== 1)
            throw new EnrolmentError('enrolment token was already used', 'token_used', 1, 409);
          if (setKey.run(publicKey, now, row.vessel_id).changes !== 1)
            throw new EnrolmentError('vessel was revoked', 'revoked', 1, 401);
          return row.vessel_id;
        })
        .immediate();
    },
    cancelFor(vesselId: string): void {
      cancel.run(vesselId);
    },
  };
}
