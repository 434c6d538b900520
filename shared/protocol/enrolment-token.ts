import { sha256Hex } from '../trust/secrets.js';

/**
 * Enrolment tokens read tne_<secret>.<root version>.<root digest prefix>. The root part pins the root the
 * vessel must receive at enrolment, so a hub (or a man in the middle) cannot hand a fresh vessel a root
 * of its own making.
 */
const TOKEN_RE = /^tne_([A-Za-z0-9_-]{43})\.(\d{1,9})\.([0-9a-f]{32})$/;

export function parseEnrolmentToken(
  token: string,
): { secret: string; rootVersion: number; rootPin: string } | undefined {
  const m = TOKEN_RE.exec(token.trim());
  return m ? { secret: m[1]!, rootVersion: Number(m[2]), rootPin: m[3]! } : undefined;
}

export function rootPinOf(rootBytes: Uint8Array): string {
  return sha256Hex(rootBytes).slice(0, 32);
}

export function formatEnrolmentToken(secret: string, rootVersion: number, rootBytes: Uint8Array): string {
  return `tne_${secret}.${rootVersion}.${rootPinOf(rootBytes)}`;
}
