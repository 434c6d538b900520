import { newSecret, sha256Hex } from '../shared/trust/secrets.js';
import { formatEnrolmentToken } from '../shared/protocol/enrolment-token.js';
import type { NewEnrolmentToken } from './store/hub-store.js';

// A week for a token sent to a ship in port; an offline file travels by post or USB stick and may wait
// at sea for a quarter before the vessel first sees a link.
export const ONLINE_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;
export const OFFLINE_TOKEN_TTL_MS = 90 * 24 * 3600 * 1000;

export { parseEnrolmentToken } from '../shared/protocol/enrolment-token.js';

/**
 * A fresh one-time enrolment token: the text the vessel gets (secret, root version and pin) and the row
 * the store keeps (only the secret's hash).
 */
export function newEnrolmentToken(
  kind: 'online' | 'offline',
  ttlMs: number,
  root: { version: number; bytes: Buffer },
  now: number,
  tlsPin?: string,
): { token: string; stored: NewEnrolmentToken } {
  const secret = newSecret();
  return {
    token: formatEnrolmentToken(secret, root.version, root.bytes, tlsPin),
    stored: { tokenHash: sha256Hex(secret), kind, expiresAt: now + ttlMs },
  };
}

/** What the store looks a presented secret up by. */
export const enrolmentTokenHash = (secret: string): string => sha256Hex(secret);
