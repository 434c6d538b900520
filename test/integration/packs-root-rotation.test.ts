import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { paths } from '../../shared/protocol/routes.js';
import { addRoot } from '../../hub/roots.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';
import { rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { storeLayer, tarOf } from '../helpers/tar.js';

function manifest(hub: TestHub, app: string, version: string, sequence: number, signer: PrivateKey) {
  const stored = storeLayer(tarOf([{ name: 'data.bin', data: randomBytes(120_000) }]), hub.chunkFiles);
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app,
    version,
    sequence,
    createdAt: '2026-11-26T00:00:00Z',
    services: {},
    images: { [`sha256:${randomBytes(32).toString('hex')}`]: { refs: [], layers: [stored.layer] } },
  };
  return { bytes: envelopeBytes(signEnvelope('release', m, [signer])), digests: [stored.index[0]] };
}

async function pack(hub: TestHub, v: TestVessel, release: string, digests: string[]) {
  const url = paths.vesselPacks(v.name);
  const s = v.sign('POST', url, { release, digests });
  return hub.app.inject({ method: 'POST', url, headers: s.headers, payload: s.payload });
}

describe('hub: packs of a release verified under the root in force when it was published (issue 10)', () => {
  it('keeps serving packs and bundles of a release signed by a key that a later root rotated out', async () => {
    let clock = Date.now();
    const hub = await startHub({ now: () => clock });
    const v = await enrolVessel(hub, 'ship-rot');
    const oldKey = hub.keys.release[0]!;
    clock += 1000;
    const before = manifest(hub, 'web', '1.0.0', 1, oldKey);
    const r1 = await hub.publish(before.bytes, 'test', clock);
    await hub.rollout(r1, 'vessel:ship-rot', clock);

    // Root v2: the same root keys, a new release key; the old release key is gone.
    clock += 1000;
    const newKey = generateKey().key;
    const v2 = signedRoot(rootPayloadFor(2, { root: hub.keys.root, release: [newKey] }), hub.keys.root);
    await addRoot(hub.deps.store, v2, clock);
    clock += 1000;

    // A release signed before the rotation still downloads (a vessel may be half way through it, or the
    // hub restarted since; its first pack request comes after the rotation) ...
    const again = await pack(hub, v, 'web@1.0.0', before.digests);
    expect(again.statusCode, again.body).toBe(201);
    const bundle = await hub.app.inject({
      url: paths.bundle('web@1.0.0'),
      headers: { authorization: `Bearer ${hub.token('operator')}` },
    });
    expect(bundle.statusCode, bundle.body).toBe(200);
    // ... but nothing new signed by the rotated-out key is accepted.
    const late = manifest(hub, 'web', '1.0.1', 2, oldKey);
    const publish = await hub.app.inject({
      method: 'POST',
      url: paths.releases(),
      headers: {
        authorization: `Bearer ${hub.token('operator')}`,
        'content-type': 'application/vnd.tender.envelope+json',
      },
      payload: late.bytes,
    });
    expect(publish.statusCode).toBeGreaterThanOrEqual(400);
    expect(publish.statusCode).toBeLessThan(500);
    expect(await hub.deps.store.releases.find('web@1.0.1')).toBeUndefined();

    // A release signed by the new key after the rotation downloads as well.
    const after = manifest(hub, 'web', '1.0.2', 3, newKey);
    const r3 = await hub.publish(after.bytes, 'test', clock);
    await hub.rollout(r3, 'vessel:ship-rot', clock);
    expect((await pack(hub, v, 'web@1.0.2', after.digests)).statusCode).toBe(201);
  });
});
