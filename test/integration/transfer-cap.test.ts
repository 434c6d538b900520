import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { storeLayer, tarOf } from '../helpers/tar.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { HubClient } from '../../agent/hub-client.js';
import { fetchRelease } from '../../agent/release/transfer/fetch-loop.js';
import { createLogger } from '../../shared/log.js';
import { enrolVessel, startHub } from '../helpers/hub.js';
import { tempDir } from '../helpers/tmp.js';
import { LinkSim } from '../link-sim.js';

describe('release transfer: bandwidth cap', () => {
  it('keeps under the cap over any 10 s on the link, in a handful of requests', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a');
    const stored = storeLayer(tarOf([{ name: 'data.bin', data: randomBytes(1_600_000) }]), hub.chunkFiles);
    const chunks = [...stored.content, stored.index];
    const id = `sha256:${'c'.repeat(64)}`;
    const m: ReleaseManifest = {
      _type: 'release',
      spec: 1,
      app: 'cap',
      version: '1',
      sequence: 1,
      createdAt: '2026-11-26T00:00:00Z',
      services: {},
      images: { [id]: { refs: [], layers: [stored.layer] } },
    };
    const release = await hub.publish(envelopeBytes(signEnvelope('release', m, [hub.keys.release[0]!])));
    await hub.rollout(release, 'vessel:ship-a');
    const url = new URL(await hub.listen());
    const link = new LinkSim({ host: '127.0.0.1', port: Number(url.port) }, { latencyMs: 100 });
    const linkPort = await link.start();
    const samples: { at: number; down: number }[] = [];
    const sampler = setInterval(() => samples.push({ at: Date.now(), down: link.stats.down }), 100);
    const RATE = 100_000;
    const store = createChunkStore(tempDir());
    const stats = await fetchRelease(
      {
        client: new HubClient(`http://127.0.0.1:${linkPort}`, v.id, v.key),
        vesselName: 'ship-a',
        chunks: store,
        dir: tempDir(),
        log: createLogger('t', 'silent'),
        bytesPerSecond: RATE,
      },
      m,
    );
    clearInterval(sampler);
    await link.close();
    expect(chunks.every(([d]) => store.has(d))).toBe(true);
    let worst = 0;
    for (const a of samples) {
      const b = [...samples].reverse().find((s) => s.at <= a.at + 10_000)!;
      worst = Math.max(worst, b.down - a.down);
    }
    // The cap, plus HTTP headers of the few responses in a window.
    expect(worst).toBeLessThanOrEqual(RATE * 10 + 4096);
    expect(stats.requests).toBeLessThanOrEqual(5);
    expect(stats.chunksStored).toBe(new Set(chunks.map((c) => c[0])).size);
  }, 60_000);
});
