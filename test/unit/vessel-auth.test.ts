import { describe, expect, it } from 'vitest';
import { generateKey, publicKeyFromRaw, signBytes } from '../../shared/trust/keys.js';
import {
  BODY_DIGEST_HEADER,
  parseVesselAuth,
  replayKeyExpiry,
  replayKeyOf,
  signVesselRequest,
  signVesselRequestCompact,
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

  it('signs in the compact form for the vessel the path names, 124 bytes with its header name', () => {
    const { key } = generateKey();
    const path = '/api/v1/vessels/ship-a/desired?with=manifest';
    const h = signVesselRequestCompact(key, 'GET', path, T);
    expect(h.authorization).toMatch(/^TV [0-9a-z]{8}\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{86}$/);
    expect(`authorization: ${h.authorization}\r\n`.length).toBe(124);
    const full = signVesselRequest(key, ID, 'GET', path, T);
    expect(`authorization: ${full.authorization}\r\n`.length).toBe(184);
    const auth = parseVesselAuth(h.authorization!, path)!;
    expect(auth).toMatchObject({ vesselName: 'ship-a', ts: T });
    const ok = (a = auth, p = path, now = T) =>
      verifyVesselRequest(publicKeyFromRaw(key.publicRaw), a, 'GET', p, undefined, now);
    expect(ok()).toBe(true);
    expect(ok(auth, path, T + VESSEL_CLOCK_WINDOW_MS + 1)).toBe(false);
    // Another vessel's path, another path of the same vessel: the signature is over the path.
    expect(parseVesselAuth(h.authorization!, '/api/v1/vessels/ship-b/desired?with=manifest')!.vesselName).toBe(
      'ship-b',
    );
    expect(ok(parseVesselAuth(h.authorization!, '/api/v1/vessels/ship-b/desired?with=manifest')!)).toBe(false);
    expect(ok(auth, '/api/v1/vessels/ship-b/desired?with=manifest')).toBe(false);
    expect(ok(auth, '/api/v1/vessels/ship-a/status')).toBe(false);
  });

  it('refuses the compact form off a vessel path, malformed, or recut from a full signature', () => {
    const { key } = generateKey();
    const h = signVesselRequestCompact(key, 'GET', '/api/v1/vessels/ship-a/desired', T).authorization!;
    // No vessel in the path (the roots route), a bad name, nothing at all.
    for (const p of ['/api/v1/roots/2', '/api/v1/vessels/../desired', '/api/v1/vessels/Ship/desired', ''])
      expect(parseVesselAuth(h, p)).toBeUndefined();
    const [ts, n, sig] = h.slice(3).split('.') as [string, string, string];
    for (const bad of [
      `TV ${ts}.${n}.${sig}=`,
      `TV ${ts}.${n}x.${sig}`,
      `TV ${ts}.${n}.${sig.slice(1)}`,
      `TV ${'z'.repeat(12)}.${n}.${sig}`,
      `TV  ${ts}.${n}.${sig}`,
      `tv ${ts}.${n}.${sig}`,
    ])
      expect(parseVesselAuth(bad, '/api/v1/vessels/ship-a/desired')).toBeUndefined();
    // A full (v2) signature over the same fields does not verify as compact: the signed strings differ.
    const full = parseVesselAuth(
      signVesselRequest(key, ID, 'GET', '/api/v1/vessels/ship-a/desired', T).authorization!,
    )!;
    const recut = `TV ${T.toString(36)}.${'AAAAAAAA'}.${full.sig.toString('base64url')}`;
    const auth = parseVesselAuth(recut, '/api/v1/vessels/ship-a/desired')!;
    expect(
      verifyVesselRequest(
        publicKeyFromRaw(key.publicRaw),
        { ...auth, nonce: full.nonce },
        'GET',
        '/api/v1/vessels/ship-a/desired',
        undefined,
        T,
      ),
    ).toBe(false);
  });
});
