import { describe, expect, it } from 'vitest';
import { generateKey, publicKeyFromRaw, signBytes } from '../../shared/trust/keys.js';
import {
  BODY_DIGEST_HEADER,
  parseVesselAuth,
  replayKeyExpiry,
  replayKeyOf,
  signVesselRequest,
  VESSEL_CLOCK_WINDOW_MS,
  verifyVesselRequest,
} from '../../shared/protocol/vessel-auth.js';

const ID = 'v_0123456789abcdef';
const T = 1_800_000_000_000;

describe('signed vessel requests', () => {
  it('signs a nonce into every request, so two identical requests in one millisecond differ', () => {
    const { key } = generateKey();
    const a = signVesselRequest(key, ID, 'POST', '/api/v1/vessels/x/status', T, Buffer.from('{}'));
    const b = signVesselRequest(key, ID, 'POST', '/api/v1/vessels/x/status', T, Buffer.from('{}'));
    const [pa, pb] = [parseVesselAuth(a.authorization!)!, parseVesselAuth(b.authorization!)!];
    expect(pa.nonce).toMatch(/^[0-9a-f]{16}$/);
    expect(pa.nonce).not.toBe(pb.nonce);
    expect(replayKeyOf(pa)).not.toBe(replayKeyOf(pb));
    // The same captured header is the same key: that is what the hub refuses a second time.
    expect(replayKeyOf(parseVesselAuth(a.authorization!)!)).toBe(replayKeyOf(pa));
    expect(replayKeyExpiry(pa)).toBe(T + VESSEL_CLOCK_WINDOW_MS + 1000);
  });

  it('verifies the nonce: changing it, the path, the method, the time or the digest breaks the signature', () => {
    const { key } = generateKey();
    const body = Buffer.from('{"a":1}');
    const h = signVesselRequest(key, ID, 'POST', '/p', T, body);
    const auth = parseVesselAuth(h.authorization!)!;
    const digest = h[BODY_DIGEST_HEADER];
    const ok = (a = auth, method = 'POST', path = '/p', d = digest, now = T) =>
      verifyVesselRequest(publicKeyFromRaw(key.publicRaw), a, method, path, d, now);
    expect(ok()).toBe(true);
    expect(ok({ ...auth, nonce: '0000000000000000' })).toBe(false);
    expect(ok({ ...auth, nonce: undefined })).toBe(false);
    expect(ok(auth, 'PUT')).toBe(false);
    expect(ok(auth, 'POST', '/q')).toBe(false);
    expect(ok({ ...auth, ts: T + 1 }, 'POST', '/p', digest, T)).toBe(false);
    expect(ok(auth, 'POST', '/p', 'f'.repeat(64))).toBe(false);
    expect(ok(auth, 'POST', '/p', digest, T + VESSEL_CLOCK_WINDOW_MS + 1)).toBe(false);
  });

  it('still verifies v1 headers (agents before the nonce), whose replays carry the same signature', () => {
    const { key } = generateKey();
    const v1 = Buffer.from(
      `tender-vessel-v1\nGET\n/p\n${T}\n${'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'}`,
    );
    const sig = signBytes(key, v1).toString('base64');
    const header = `Tender-Vessel id=${ID}, ts=${T}, sig=${sig}`;
    const auth = parseVesselAuth(header)!;
    expect(auth.nonce).toBeUndefined();
    expect(verifyVesselRequest(publicKeyFromRaw(key.publicRaw), auth, 'GET', '/p', undefined, T)).toBe(true);
    expect(replayKeyOf(parseVesselAuth(header)!)).toBe(replayKeyOf(auth));
    for (const bad of [
      `Tender-Vessel id=${ID}, ts=${T}, n=xyz, sig=${sig}`,
      `Tender-Vessel id=${ID}, ts=${T}, n=0123456789abcdef0, sig=${sig}`,
      `Tender-Vessel id=${ID}, n=0123456789abcdef, ts=${T}, sig=${sig}`,
    ])
      expect(parseVesselAuth(bad)).toBeUndefined();
  });
});
