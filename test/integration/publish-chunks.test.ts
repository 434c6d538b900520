import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { buildBusyboxImage } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import { startShore } from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { tempDir } from '../helpers/tmp.js';
import { readEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import { loadLayerIndex } from '../../shared/content/release-chunks.js';
import { joinTar } from '../../shared/content/tar-split.js';
import { uploadMissingChunks } from '../../publisher/chunk-upload.js';

const REPO = unique('tender-test/pub');

function compose(dir: string, name: string, image: string): string {
  const file = join(dir, `${name}.yml`);
  writeFileSync(file, `name: pub\nservices:\n  web:\n    image: ${image}\n    ports: ["18099:8080"]\n`);
  return file;
}

describe('release publish: chunks', () => {
  it('uploads each image as verified content-defined chunks, only what the hub lacks', async () => {
    const shore = await startShore();
    const dir = tempDir();
    const cache = join(dir, 'cache');
    buildBusyboxImage({ tag: `${REPO}:1`, body: 'one\n' });
    buildBusyboxImage({ tag: `${REPO}:2`, body: 'two, a little different\n' });
    const publish = async (file: string, version: string) => {
      const r = await tender(
        [
          'release',
          'publish',
          '--compose',
          file,
          '--key',
          shore.releaseKey,
          '--version',
          version,
          '--cache',
          cache,
          '--out',
          join(dir, `${version}.json`),
          '--json',
        ],
        shore.env,
      );
      expect(r.code, r.stderr).toBe(0);
      return {
        ...(JSON.parse(r.stdout) as { chunks: number; chunksUploaded: number; uploadedBytes: number }),
        stderr: r.stderr,
      };
    };
    const first = await publish(compose(dir, 'a', `${REPO}:1`), '1');
    expect(first.chunksUploaded).toBe(first.chunks);
    expect(first.uploadedBytes).toBeGreaterThan(100_000);
    // Progress goes to stderr as plain lines off a TTY, with the total and the rate; the last at 100 %.
    expect(first.stderr).toMatch(/^uploading chunks: [\d.]+ [kMG]?B of [\d.]+ [kMG]?B \(100 %\), [\d.]+ [kMG]?B\/s$/m);
    expect(first.stderr).toMatch(
      new RegExp(`^reading ${REPO}:1: [\\d.]+ [kMG]?B( of [\\d.]+ [kMG]?B \\(\\d+ %\\).*)?$`, 'm'),
    );

    // The layer reassembled from the hub's chunks is exactly the layer Docker knows (its diff ID).
    const m = JSON.parse(
      Buffer.from(readEnvelope(readFileSync(join(dir, '1.json'))).payload, 'base64').toString(),
    ) as ReleaseManifest;
    const img = Object.values(m.images)[0]!;
    const layer = img.layers[0]!;
    const hubStore = createChunkStore(join(shore.dir, 'hub', 'chunks'));
    const ix = loadLayerIndex(hubStore, layer.index!);
    const h = createHash('sha256');
    for (const piece of joinTar(
      ix.meta,
      ix.chunks.map(([digest]) => brotliDecompressSync(hubStore.get(digest))),
    ))
      h.update(piece);
    expect(`sha256:${h.digest('hex')}`).toBe(layer.diffId);
    // Headers live in the index; the content chunks hold only file bodies (the busybox binary and index.html).
    expect(ix.meta.byteLength + ix.contentSize).toBe(layer.size);
    expect(ix.meta.byteLength).toBeLessThan(ix.contentSize / 10);

    const again = await publish(compose(dir, 'b', `${REPO}:1`), '2');
    expect(again).toMatchObject({ chunksUploaded: 0, uploadedBytes: 0 });
    expect(again.stderr).not.toMatch(/uploading chunks/);

    // Uploaded to a second, empty hub, progress ends exactly at the total it announced.
    const other = await startShore();
    const seen: [number, number][] = [];
    const up = await uploadMissingChunks(
      { hub: other.url, token: other.env.TENDER_TOKEN },
      m,
      createChunkStore(cache),
      (done, total) => seen.push([done, total]),
    );
    expect(up.missing).toBe(first.chunks);
    expect(seen.at(-1)).toEqual([up.uploadedBytes, up.uploadedBytes]);

    const changed = await publish(compose(dir, 'c', `${REPO}:2`), '3');
    expect(changed.chunksUploaded).toBeGreaterThan(0);
    expect(changed.chunksUploaded).toBeLessThan(changed.chunks / 4);
  }, 120_000);
});
