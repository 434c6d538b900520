import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { TenderError, errorMessage } from '../../shared/errors.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { ChunkError, verifyCompressedChunk } from '../../shared/content/chunk-store.js';
import { LayerIndexError } from '../../shared/content/layer-index.js';
import { loadLayerIndex } from '../../shared/content/release-chunks.js';
import { joinTar, TarFormatError, TarPolicyError } from '../../shared/content/tar-split.js';

export class StageError extends TenderError {}

type Image = ReleaseManifest['images'][string];

/** Each chunk checked against its digest as it is read: a file damaged on disk is dropped, to be fetched again. */
function* inflate(chunks: Iterable<readonly [string, number, ...unknown[]]>, store: ChunkStore): Generator<Buffer> {
  for (const [digest, raw] of chunks) {
    let data: Buffer;
    try {
      data = verifyCompressedChunk(digest, store.get(digest), raw);
    } catch (err) {
      store.remove(digest);
      throw new StageError(
        `chunk ${digest.slice(0, 12)} on board is damaged (${errorMessage(err)}); removed, it will be fetched again`,
      );
    }
    yield data;
  }
}

type Layer = Image['layers'][number];

/** A layer's exact tar bytes: its index's meta stream joined with its content chunks, under the tar rules. */
function layerTar(l: Layer, store: ChunkStore): Generator<Buffer> {
  const ix = loadLayerIndex(store, l.index!);
  return joinTar(ix.meta, inflate(ix.chunks, store));
}

/** Reassemble a layer (or config) and check it against its digest before anything loads. */
function verifyAssembled(what: string, pieces: Iterable<Buffer>, expected: string, size: number): void {
  const h = createHash('sha256');
  let n = 0;
  try {
    for (const piece of pieces) {
      h.update(piece);
      n += piece.byteLength;
      if (n > size) break;
    }
  } catch (err) {
    if (
      err instanceof TarPolicyError ||
      err instanceof TarFormatError ||
      err instanceof LayerIndexError ||
      err instanceof ChunkError
    )
      throw new StageError(`${what} refused: ${err.message}; nothing loaded`);
    throw err;
  }
  if (n !== size || `sha256:${h.digest('hex')}` !== expected)
    throw new StageError(`${what} reassembled from chunks does not match ${expected.slice(0, 19)}; nothing loaded`);
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, '0')}\0`,
    136,
  );
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  const sum = h.reduce((a, b) => a + b, 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** A docker-save tar (manifest.json, config, layer tars) streamed from verified chunks. */
function* saveTar(imageId: string, img: Image, store: ChunkStore): Generator<Buffer> {
  const hex = imageId.slice(7);
  const manifest = Buffer.from(
    JSON.stringify([{ Config: `${hex}.json`, RepoTags: img.refs, Layers: img.layers.map((_, i) => `${i}/layer.tar`) }]),
  );
  yield tarHeader('manifest.json', manifest.byteLength);
  yield manifest;
  yield pad(manifest.byteLength);
  yield tarHeader(`${hex}.json`, img.config!.size);
  yield* inflate(img.config!.chunks, store);
  yield pad(img.config!.size);
  for (const [i, l] of img.layers.entries()) {
    yield tarHeader(`${i}/layer.tar`, l.size);
    yield* layerTar(l, store);
    yield pad(l.size);
  }
  yield Buffer.alloc(1024);
}

/**
 * Load the release's images that the engine lacks: every layer and config is reassembled from chunks and
 * checked against its digest first; only then is the image streamed into `docker load`, and its ID
 * compared with the manifest's.
 */
export async function stageRelease(docker: DockerEngine, m: ReleaseManifest, store: ChunkStore): Promise<string[]> {
  const loaded: string[] = [];
  for (const [imageId, img] of Object.entries(m.images)) {
    if (await docker.imageInspect(imageId)) continue;
    if (!img.config || img.layers.some((l) => !l.index))
      throw new StageError(`image ${imageId.slice(7, 19)} is not on board and the release carries no chunks for it`);
    verifyAssembled(`config of ${imageId.slice(7, 19)}`, inflate(img.config.chunks, store), imageId, img.config.size);
    for (const l of img.layers) verifyAssembled(`layer ${l.diffId.slice(7, 19)}`, layerTar(l, store), l.diffId, l.size);
    await docker.loadImage(Readable.from(saveTar(imageId, img, store)));
    const got = await docker.imageInspect(imageId);
    if (!got) throw new StageError(`docker load did not produce image ${imageId.slice(7, 19)}`);
    loaded.push(imageId);
  }
  return loaded;
}
