import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';
import { storeLayer, tarOf } from '../helpers/tar.js';
import { paths } from '../../shared/protocol/routes.js';

/** A release of one random layer, published on the hub and rolled out to `target`. */
async function release(hub: TestHub, app: string, target: string, refs: string[] = []) {
  const stored = storeLayer(
    tarOf([
      { name: 'data.bin', data: randomBytes(300_000) },
      { name: 'more.bin', data: randomBytes(90_000) },
    ]),
    hub.chunkFiles,
  );
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app,
    version: '1',
    sequence: 1,
    createdAt: '2026-11-26T00:00:00Z',
    services: {},
    images: { [`sha256:${'d'.repeat(64)}`]: { refs, layers: [stored.layer] } },
  };
  const r = await hub.publish(envelopeBytes(signEnvelope('release', m, [hub.keys.release[0]!])));
  if (target) await hub.rollout(r, target);
  return { digests: [stored.index[0], ...stored.content.map((c) => c[0])], content: stored.content };
}

async function post(hub: TestHub, v: TestVessel, body: unknown, accept?: string) {
  const path = paths.vesselPacks(v.name);
  const s = v.sign('POST', path, body);
  return hub.app.inject({
    method: 'POST',
    url: path,
    headers: { ...s.headers, ...(accept ? { accept } : {}) },
    payload: s.payload,
  });
}

async function get(hub: TestHub, v: TestVessel, id: string, extra: Record<string, string> = {}, name = v.name) {
  const path = paths.vesselPack(name, id);
  return hub.app.inject({ method: 'GET', url: path, headers: { ...v.sign('GET', path).headers, ...extra } });
}

describe('hub packs', () => {
  it('serves a pack whole, at any byte range, and in the creating response itself, always the same bytes', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-p');
    const { digests } = await release(hub, 'packs', 'vessel:ship-p');
    const created = await post(hub, v, { release: 'packs@1', digests });
    expect(created.statusCode, created.body).toBe(201);
    const { id, length, etag } = created.json() as { id: string; length: number; etag: string };
    const whole = await get(hub, v, id);
    expect(whole.statusCode).toBe(200);
    expect(whole.rawPayload.byteLength).toBe(length);
    // Entries in the order asked: 32-byte digest, 4-byte length, the compressed chunk.
    expect(whole.rawPayload.subarray(0, 32).toString('hex')).toBe(digests[0]);
    const tail = await get(hub, v, id, { range: `bytes=1000-`, 'if-range': etag });
    expect(tail.statusCode).toBe(206);
    expect(tail.headers['content-range']).toBe(`bytes 1000-${length - 1}/${length}`);
    expect(tail.rawPayload.equals(whole.rawPayload.subarray(1000))).toBe(true);
    const mid = await get(hub, v, id, { range: `bytes=10-19`, 'if-range': etag });
    expect(mid.rawPayload.equals(whole.rawPayload.subarray(10, 20))).toBe(true);
    expect((await get(hub, v, id, { range: `bytes=${length}-` })).statusCode).toBe(416);
    // A validator that does not match means "send it all" (the vessel then starts the pack again).
    expect((await get(hub, v, id, { range: 'bytes=1000-', 'if-range': '"other"' })).statusCode).toBe(200);
    // Asked in Accept, the creation answers with the same bytes, saving a round trip.
    const streamed = await post(hub, v, { release: 'packs@1', digests }, 'application/vnd.tender.pack');
    expect(streamed.statusCode).toBe(201);
    expect(streamed.headers['tender-pack-id']).toBe(id);
    expect(streamed.rawPayload.equals(whole.rawPayload)).toBe(true);
  });

  it('lets a vessel fetch only releases targeted at it, only their chunks, only its own packs', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const b = await enrolVessel(hub, 'ship-b');
    const { digests } = await release(hub, 'mine', 'vessel:ship-a');
    const other = await release(hub, 'theirs', '');
    expect((await post(hub, b, { release: 'mine@1', digests })).statusCode).toBe(404);
    expect((await post(hub, a, { release: 'theirs@1', digests: other.digests })).statusCode).toBe(404);
    const foreign = await post(hub, a, { release: 'mine@1', digests: [other.content[0]![0]] });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().message).toMatch(/is not part of release mine@1/);
    const { id } = (await post(hub, a, { release: 'mine@1', digests })).json() as { id: string };
    expect((await get(hub, b, id)).statusCode).toBe(404);
    expect((await get(hub, b, id, {}, 'ship-a')).statusCode).toBe(404);
    expect((await post(hub, a, { release: 'mine@1', digests: ['../../etc/passwd'] })).statusCode).toBe(400);
  });

  it('says the release is incomplete when the hub lacks one of its chunks', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-c');
    const { digests, content } = await release(hub, 'gap', 'vessel:ship-c');
    hub.chunkFiles.gc(new Set(digests.filter((d) => d !== content[0]![0])));
    const r = await post(hub, a, { release: 'gap@1', digests: content.map((c) => c[0]) });
    expect(r.statusCode).toBe(409);
    expect(r.json().message).toMatch(/lacks chunk/);
  });

  it('carries a small manifest in the desired state when asked, the same bytes the release route serves', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const b = await enrolVessel(hub, 'ship-b');
    await release(hub, 'mine', 'vessel:ship-a');
    const desired = async (v: TestVessel, query = '?with=manifest') => {
      const path = `${paths.vesselDesired(v.name)}${query}`;
      return (await hub.app.inject({ url: path, headers: v.sign('GET', path).headers })).json() as {
        release: { version: string } | null;
        manifest?: string;
      };
    };
    const path = paths.vesselManifest('ship-a', 'mine', '1');
    const served = (await hub.app.inject({ url: path, headers: a.sign('GET', path).headers })).rawPayload;
    const withManifest = await desired(a);
    expect(withManifest.release?.version).toBe('1');
    expect(Buffer.from(withManifest.manifest!, 'base64').equals(served)).toBe(true);
    expect(await desired(a, '')).not.toHaveProperty('manifest');
    // Nothing rides for a vessel the release is not targeted at.
    expect(await desired(b)).toEqual({ vessel: 'ship-b', release: null, rootVersion: 1 });
    // A large manifest is left to the resumable release route.
    await release(
      hub,
      'big',
      'vessel:ship-a',
      Array.from({ length: 400 }, (_, i) => `registry.example/big/image-${i}:tag-with-some-length`),
    );
    const big = await desired(a);
    expect(big.release?.version).toBe('1');
    expect(big).not.toHaveProperty('manifest');
  });
});
