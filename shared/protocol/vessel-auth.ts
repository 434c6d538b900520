import { createHash } from 'node:crypto';
import { signBytes, verifyBytes, type PrivateKey, type PublicKey } from '../trust/keys.js';
import { HEADER } from './http.js';

/**
 * How a vessel proves who it is on every request: an Ed25519 signature by the key it generated at
 * enrolment over the method, path, a timestamp and the body digest. The hub keeps only public keys, so a
 * stolen hub database holds no vessel credential. Vessels correct their clock offset from the hub's Date
 * header, so a ship whose clock is years off still authenticates.
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

function stringToSign(method: string, pathAndQuery: string, ts: number, digest: string): Buffer {
  return Buffer.from(`tender-vessel-v1\n${method.toUpperCase()}\n${pathAndQuery}\n${ts}\n${digest}`);
}

export function signVesselRequest(
  key: PrivateKey,
  vesselId: string,
  method: string,
  pathAndQuery: string,
  ts: number,
  body?: Uint8Array,
): Record<string, string> {
  const digest = bodyDigest(body);
  const sig = signBytes(key, stringToSign(method, pathAndQuery, ts, digest)).toString('base64');
  const headers: Record<string, string> = {
    authorization: `${VESSEL_AUTH_SCHEME} id=${vesselId}, ts=${ts}, sig=${sig}`,
  };
  if (body && body.byteLength > 0) headers[BODY_DIGEST_HEADER] = digest;
  return headers;
}

export interface VesselAuthHeader {
  vesselId: string;
  ts: number;
  sig: Buffer;
}

export function parseVesselAuth(header: string): VesselAuthHeader | undefined {
  const m = /^Tender-Vessel id=(v_[0-9a-f]{16}), ts=(\d{1,15}), sig=([A-Za-z0-9+/]{86}==)$/.exec(header);
  if (!m) return undefined;
  return { vesselId: m[1]!, ts: Number(m[2]), sig: Buffer.from(m[3]!, 'base64') };
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
  return verifyBytes(key, stringToSign(method, pathAndQuery, auth.ts, digest), auth.sig);
}
