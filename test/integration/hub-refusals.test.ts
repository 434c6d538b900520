import { describe, expect, it } from 'vitest';
import { paths } from '../../shared/protocol/routes.js';
import { enrolVessel, startHub } from '../helpers/hub.js';
import { publishViaApi } from '../helpers/publish-api.js';

/** Ranges that must be refused with 416 on every resumable route, never served with a negative length. */
const BAD_RANGES = [
  'bytes=10-5',
  'bytes=5-4',
  'bytes=999999999-',
  'bytes=999999999-1000000000',
  'bytes=-0',
  'bytes=-',
  'bytes=0-1,5-6',
  'bytes=abc-',
  'bytes=1e3-',
  'bytes= 1-2',
  'bytes=-1-2',
  'items=0-1',
  'bytes=99999999999999999999-',
  'bytes=0x10-',
];

describe('hub: refused, and refused well (ATTACKS.md 43)', () => {
  it('answers 416 to every malformed, reversed or out-of-bounds range on manifests and packs', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-r');
    const { digests, envelope } = await publishViaApi(hub, {
      app: 'rng',
      version: '1.0.0',
      sequence: 1,
      target: 'vessel:ship-r',
    });
    const packPath = paths.vesselPacks(v.name);
    const s = v.sign('POST', packPath, { release: 'rng@1.0.0', digests });
    const created = await hub.app.inject({ method: 'POST', url: packPath, headers: s.headers, payload: s.payload });
    expect(created.statusCode, created.body).toBe(201);
    const { id, length } = created.json() as { id: string; length: number };
    const targets = [
      { url: paths.vesselManifest(v.name, 'rng', '1.0.0'), length: envelope.byteLength },
      { url: paths.vesselPack(v.name, id), length },
    ];
    for (const t of targets) {
      const get = (range: string) =>
        hub.app.inject({ url: t.url, headers: { ...v.sign('GET', t.url).headers, range } });
      for (const range of BAD_RANGES) {
        const r = await get(range);
        expect(r.statusCode, `${t.url} ${range}: ${r.body}`).toBe(416);
        expect(r.headers['content-range']).toBe(`bytes */${t.length}`);
        expect(r.json().error).toBe('range_not_satisfiable');
      }
      // The good ones, exactly.
      const whole = await hub.app.inject({ url: t.url, headers: v.sign('GET', t.url).headers });
      expect(whole.rawPayload.byteLength).toBe(t.length);
      for (const [range, start, end] of [
        ['bytes=10-', 10, t.length - 1],
        ['bytes=10-19', 10, 19],
        ['bytes=5-5', 5, 5],
        ['bytes=-7', t.length - 7, t.length - 1],
        [`bytes=0-${t.length + 100}`, 0, t.length - 1],
      ] as const) {
        const r = await get(range);
        expect(r.statusCode, `${t.url} ${range}`).toBe(206);
        expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${t.length}`);
        expect(Number(r.headers['content-length'] ?? r.rawPayload.byteLength)).toBe(end - start + 1);
        expect(r.rawPayload.equals(whole.rawPayload.subarray(start, end + 1))).toBe(true);
      }
    }
  });

  it('answers 400 to log searches with NUL or other control characters; FTS syntax is just words', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-r');
    const auth = { authorization: `Bearer ${hub.token('viewer')}` };
    for (const grep of ['a\u0000b', '\u0000', 'x\ny', 'tab\there', '\u007f', 'a\u001bb']) {
      const r = await hub.app.inject({ url: paths.vesselLogs('ship-r', { grep }), headers: auth });
      expect(r.statusCode, JSON.stringify(grep)).toBe(400);
      expect(r.json().message).toMatch(/^grep: must not contain control characters/);
    }
    for (const grep of ['"OR *', 'a NEAR b', 'col:val', "' OR 1=1--", '(', '^x', 'é ü 中']) {
      const r = await hub.app.inject({ url: paths.vesselLogs('ship-r', { grep }), headers: auth });
      expect(r.statusCode, `${grep}: ${r.body}`).toBe(200);
    }
  });

  it(
    'answers 400 naming the field to a path parameter that fails its schema, on ' + 'every route that has one',
    async () => {
      const hub = await startHub();
      const v = await enrolVessel(hub, 'ship-r');
      const auth = { authorization: `Bearer ${hub.token('admin')}` };
      const bad = [
        `/api/v1/vessels/${v.name}/releases/sms@!`,
        `/api/v1/vessels/${v.name}/releases/sms`,
        `/api/v1/vessels/${v.name}/releases/%00`,
        `/api/v1/vessels/${v.name}/packs/zz`,
        `/api/v1/vessels/Ship!/logs`,
        `/api/v1/vessels/%00/events`,
        `/api/v1/roots/abc`,
        `/api/v1/roots/-1`,
        `/api/v1/roots/99999999999999999999`,
      ];
      for (const url of bad) {
        const r = await hub.app.inject({ url, headers: auth });
        expect(r.statusCode, `${url}: ${r.body}`).toBe(400);
        expect(r.json().error).toBe('bad_request');
        expect(r.body).not.toMatch(/ZodError|at .*\.ts:/);
      }
      // The router's own refusals come in the same shape.
      const long = await hub.app.inject({
        url: `/api/v1/vessels/${v.name}/releases/${'a'.repeat(300)}@1`,
        headers: auth,
      });
      expect(long.statusCode).toBe(414);
      expect(long.json()).toEqual({
        error: 'uri_too_long',
        message: 'a path parameter is longer than any valid value',
      });
      const badUrl = await hub.app.inject({ url: `/api/v1/vessels/%zz/logs`, headers: auth });
      expect(badUrl.statusCode).toBe(400);
      expect(Object.keys(badUrl.json()).sort()).toEqual(['error', 'message']);
    },
  );
});
