import { sha256Hex } from '../trust/secrets.js';
import { pinFromToken, pinToToken } from '../tls/certs.js';

/**
 * Enrolment tokens read tne_<secret>.<root version>.<root digest prefix>[.<hub CA pin>]. The root part pins
 * the root the vessel must receive at enrolment, so a hub (or a man in the middle) cannot hand a fresh
 * vessel a root of its own making. The last part, present when the hub serves TLS itself, is the sha256 of
 * the self-signed certificate (the hub's CA, or its own certificate) the vessel trusts for the link: the
 * token is sent only over a connection that certificate vouches for. A token without it is from a hub that
 * serves plain HTTP (or sits behind a TLS proxy): the vessel then needs the system store for an https://
 * hub, or --insecure-http for an http:// one.
 */
const TOKEN_RE = /^tne_([A-Za-z0-9_-]{43})\.(\d{1,9})\.([0-9a-f]{32})(?:\.([A-Za-z0-9_-]{43}))?$/;

export interface EnrolmentToken {
  secret: string;
  rootVersion: number;
  rootPin: string;
  /** Hex sha256 of the certificate the vessel pins for the hub's TLS; absent in tokens of plain-HTTP hubs. */
  tlsPin?: string;
}

export function parseEnrolmentToken(token: string): EnrolmentToken | undefined {
  const m = TOKEN_RE.exec(token.trim());
  if (!m) return undefined;
  const t: EnrolmentToken = { secret: m[1]!, rootVersion: Number(m[2]), rootPin: m[3]! };
  if (m[4]) t.tlsPin = pinFromToken(m[4]);
  return t;
}

export function rootPinOf(rootBytes: Uint8Array): string {
  return sha256Hex(rootBytes).slice(0, 32);
}

export function formatEnrolmentToken(
  secret: string,
  rootVersion: number,
  rootBytes: Uint8Array,
  tlsPin?: string,
): string {
  return `tne_${secret}.${rootVersion}.${rootPinOf(rootBytes)}${tlsPin ? `.${pinToToken(tlsPin)}` : ''}`;
}
