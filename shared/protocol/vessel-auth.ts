import { createHash, randomBytes } from 'node:crypto';
import { signBytes, verifyBytes, type PrivateKey, type PublicKey } from '../trust/keys.js';
import { HEADER } from './http.js';

/**
 * How a vessel proves who it is on every request: an Ed25519 signature by the key it generated at
 * enrolment over the method, path, a timestamp, a random nonce and the body digest. The hub keeps only
 * public keys, so a stolen hub database holds no vessel credential. Vessels correct their clock offset from
 * the hub's Date header, so a ship whose clock is years off still authenticates.
 *
 * Replay: a captured request is valid only inside the clock window, and inside it only once: the hub
 * records each accepted request by replayKeyOf (a digest of its signature) until the window ends and
 * refuses a second use. The nonce makes two genuine requests signed in the same millisecond distinct.
 * Headers without a nonce (agents before it, v1) are still verified, and their replays refused the same
 * way: Ed25519 signatures are deterministic, so a replay carries the same signature.
 */
export const VESSEL_AUTH_SCHEME = 'Tender-Vessel';
export const BODY_DIGEST_HEADER = HEADER.bodyDigest;
// Wide enough for a 1.5 s satellite round trip and a Date header rounded to the second, narrow enough
// that a captured request cannot be replayed tomorrow.
export const VESSEL_CLOCK_WINDOW_MS = 5 * 60 * 1000;

const EMPTY_SHA256 = createHash('sha256').digest('hex');

export function bodyDigest(body: Uint8Array | undefined): string {
  return body && body.byteLength > 0 ? createHash('sha256').update(body).digest('hex') : EMPTY_SHA256;
}

function stringToSign(
  method: string,
  pathAndQuery: string,
  ts: number,
  digest: string,
  nonce?: string,
  compact = false,
): Buffer {
  const m = method.toUpperCase();
  return Buffer.from(
    nonce === undefined
      ? `tender-vessel-v1\n${m}\n${pathAndQuery}\n${ts}\n${digest}`
      : `tender-vessel-${compact ? 'v3' : 'v2'}\n${m}\n${pathAndQuery}\n${ts}\n${nonce}\n${digest}`,
  );
}

/**
 * The compact form (v3) for requests under /api/v1/vessels/NAME/: the vessel is the one the path names,
 * the timestamp base 36, nonce (48 bits) and signature base64url: 124 bytes a request instead of 184, what
 * keeps an idle vessel at 4 polls an hour under 1 MB a month. Sent only to a hub that said it takes it
 * (COMPACT_AUTH_HEADER on a desired state); the signed string is v3, so a v2 signature cannot be recut.
 */
export const COMPACT_AUTH_SCHEME = 'TV';
/** Answer header by which a hub says it takes the compact form. */
export const COMPACT_AUTH_HEADER = 'tender-auth';
const VESSEL_PATH = /^\/api\/v1\/vessels\/([a-z0-9][a-z0-9-]{0,62})(?:[/?]|$)/;

/** The vessel a path under /api/v1/vessels/ names: the only requests the compact form may sign. */
export function vesselOfPath(pathAndQuery: string): string | undefined {
  return VESSEL_PATH.exec(pathAndQuery)?.[1];
}

export function signVesselRequestCompact(
  key: PrivateKey,
  method: string,
  pathAndQuery: string,
  ts: number,
  body?: Uint8Array,
  nonce: string = randomBytes(6).toString('base64url'),
): Record<string, string> {
  return signedHeaders(body, (digest) => {
    const sig = signBytes(key, stringToSign(method, pathAndQuery, ts, digest, nonce, true)).toString('base64url');
    return `${COMPACT_AUTH_SCHEME} ${ts.toString(36)}.${nonce}.${sig}`;
  });
}

/** The Authorization header `authorize` writes over the body's digest, and the digest when there is a body. */
function signedHeaders(body: Uint8Array | undefined, authorize: (digest: string) => string): Record<string, string> {
  const digest = bodyDigest(body);
  const headers: Record<string, string> = { authorization: authorize(digest) };
  if (body && body.byteLength > 0) headers[BODY_DIGEST_HEADER] = digest;
  return headers;
}

export function signVesselRequest(
  key: PrivateKey,
  vesselId: string,
  method: string,
  pathAndQuery: string,
  ts: number,
  body?: Uint8Array,
  nonce: string = randomBytes(8).toString('hex'),
): Record<string, string> {
  return signedHeaders(body, (digest) => {
    const sig = signBytes(key, stringToSign(method, pathAndQuery, ts, digest, nonce)).toString('base64');
    return `${VESSEL_AUTH_SCHEME} id=${vesselId}, ts=${ts}, n=${nonce}, sig=${sig}`;
  });
}

export type VesselAuthHeader = {
  ts: number;
  /** 16 hex digits (v2), 8 base64url characters (compact); absent in v1 headers. */
  nonce?: string;
  sig: Buffer;
} & ({ vesselId: string; vesselName?: undefined } | { vesselId?: undefined; vesselName: string; compact: true });

interface FullAuthHeader {
  vesselId: string;
  ts: number;
  /** 16 hex digits; absent in v1 headers. */
  nonce?: string;
  sig: Buffer;
}

/** A vessel's Authorization header; the compact form names its vessel by the path, so it needs it. */
export function parseVesselAuth(header: string, pathAndQuery = ''): VesselAuthHeader | undefined {
  const c = /^TV ([0-9a-z]{1,11})\.([A-Za-z0-9_-]{8})\.([A-Za-z0-9_-]{86})$/.exec(header);
  if (c) {
    const vesselName = vesselOfPath(pathAndQuery);
    const ts = parseInt(c[1]!, 36);
    if (!vesselName || !Number.isSafeInteger(ts)) return undefined;
    return { vesselName, compact: true, ts, nonce: c[2], sig: Buffer.from(c[3]!, 'base64url') };
  }
  return parseFullAuth(header);
}

function parseFullAuth(header: string): FullAuthHeader | undefined {
  const m = /^Tender-Vessel id=(v_[0-9a-f]{16}), ts=(\d{1,15}), (?:n=([0-9a-f]{16}), )?sig=([A-Za-z0-9+/]{86}==)$/.exec(
    header,
  );
  if (!m) return undefined;
  return { vesselId: m[1]!, ts: Number(m[2]), nonce: m[3], sig: Buffer.from(m[4]!, 'base64') };
}

/** What the hub records an accepted request by: a second request with it is a replay. */
export function replayKeyOf(auth: VesselAuthHeader): string {
  return createHash('sha256').update(auth.sig).digest('hex').slice(0, 32);
}

/** Until when a request must be remembered: after it, its timestamp alone refuses it. */
export function replayKeyExpiry(auth: VesselAuthHeader): number {
  return auth.ts + VESSEL_CLOCK_WINDOW_MS + 1000;
}

export function verifyVesselRequest(
  key: PublicKey,
  auth: VesselAuthHeader,
  method: string,
  pathAndQuery: string,
  declaredDigest: string | undefined,
  now: number,
): boolean {
  if (Math.abs(now - auth.ts) > VESSEL_CLOCK_WINDOW_MS) return false;
  const digest = declaredDigest ?? EMPTY_SHA256;
  if (!/^[0-9a-f]{64}$/.test(digest)) return false;
  if (auth.vesselName !== undefined && vesselOfPath(pathAndQuery) !== auth.vesselName) return false;
  const compact = auth.vesselName !== undefined;
  return verifyBytes(key, stringToSign(method, pathAndQuery, auth.ts, digest, auth.nonce, compact), auth.sig);
}
