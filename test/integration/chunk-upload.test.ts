import { brotliCompressSync, constants } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunkAll } from '../../shared/content/chunking.js';
import { encodeUploadPack } from '../../shared/protocol/pack.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { startHub, enrolVessel } from '../helpers/hub.js';
import { paths } from '../../shared/protocol/routes.js';

const br = (b: Buffer) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
const entries = (data: Buffer) =>
  chunkAll(data).map((c) => ({ digest: c.digest, rawSize: c.data.byteLength, compressed: br(c.data) }));

describe('hub: chunk upload from the publisher', () => {
  it('answers which chunks it lacks in one request, stores verified uploads, and skips what it has', async () => {
    const hub = await startHub();
    const auth = { authorization: `Bearer ${hub.token('operator')}` };
    const data = Buffer.from(
      Array.from({ length: 20_000 }, (_, i) => `line ${i} of a layer with some text\n`).join(''),
    );
    const e = entries(data);
    const missing = async () =>
      (
        await hub.app.inject({
          method: 'POST',
          url: paths.chunksMissing(),
          headers: auth,
          payload: { digests: e.map((x) => x.digest) },
        })
      ).json().missing as string[];
    expect(await missing()).toHaveLength(new Set(e.map((x) => x.digest)).size);
    const up = await hub.app.inject({
      method: 'POST',
      url: paths.chunks(),
      headers: { ...auth, 'content-type': MEDIA.uploadPack },
      payload: encodeUploadPack(e),
    });
    expect(up.statusCode, up.body).toBe(200);
    expect(up.json().stored).toBeGreaterThan(0);
    expect(await missing()).toEqual([]);
    const again = await hub.app.inject({
      method: 'POST',
      url: paths.chunks(),
      headers: { ...auth, 'content-type': MEDIA.uploadPack },
      payload: encodeUploadPack(e),
    });
    expect(again.json()).toEqual({ stored: 0, present: e.length });
  });

  it(
    'refuses a chunk whose bytes do not match its digest, a bomb past its declared ' + 'size, and a truncated pack',
    async () => {
      const hub = await startHub();
      const headers = { authorization: `Bearer ${hub.token('operator')}`, 'content-type': MEDIA.uploadPack };
      const [good] = entries(Buffer.alloc(5000, 7));
      const lying = { ...good!, compressed: br(Buffer.alloc(5000, 8)) };
      const r1 = await hub.app.inject({
        method: 'POST',
        url: paths.chunks(),
        headers,
        payload: encodeUploadPack([lying]),
      });
      expect(r1.statusCode).toBe(400);
      expect(r1.json().message).toMatch(/content does not match its digest/);
      const bomb = { ...good!, compressed: br(Buffer.alloc(50 * 1024 * 1024)) };
      const r2 = await hub.app.inject({
        method: 'POST',
        url: paths.chunks(),
        headers,
        payload: encodeUploadPack([bomb]),
      });
      expect(r2.statusCode).toBe(400);
      expect(r2.json().message).toMatch(/does not inflate to its declared 5000 bytes/);
      const whole = encodeUploadPack([good!]);
      const r3 = await hub.app.inject({
        method: 'POST',
        url: paths.chunks(),
        headers,
        payload: whole.subarray(0, whole.byteLength - 3),
      });
      expect(r3.json().message).toMatch(/runs past the end/);
      expect(await hub.deps.store.chunks.has(good!.digest)).toBe(false);
    },
  );

  it('refuses chunk routes to viewers and vessels', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a');
    const viewer = await hub.app.inject({
      method: 'POST',
      url: paths.chunksMissing(),
      headers: { authorization: `Bearer ${hub.token('viewer')}` },
      payload: { digests: [] },
    });
    expect(viewer.statusCode).toBe(403);
    const s = v.sign('POST', paths.chunksMissing(), { digests: [] });
    expect(
      (await hub.app.inject({ method: 'POST', url: paths.chunksMissing(), headers: s.headers, payload: s.payload }))
        .statusCode,
    ).toBe(403);
  });
});
