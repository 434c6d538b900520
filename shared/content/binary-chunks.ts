import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, constants } from 'node:zlib';
import type { ChunkRef } from '../protocol/manifest.js';
import { Chunker, type Chunk } from './chunking.js';
import type { ChunkStore } from './chunk-store.js';
import { encodeLayerIndex } from './layer-index.js';

const brotliAsync = promisify(brotliCompress);
const params = (quality: number, size: number) => ({
  params: { [constants.BROTLI_PARAM_QUALITY]: quality, [constants.BROTLI_PARAM_SIZE_HINT]: size },
});

export interface ChunkedFile {
  size: number;
  sha256: string;
  /** The index blob (a layer index with an empty meta stream) listing the content chunks in order. */
  index: ChunkRef;
  /** Content chunks that were not in the store before. */
  added: number;
}

/**
 * Chunk one file (an executable) into `store` with the content-defined chunker every release uses, so two
 * versions share every unchanged stretch; compress each new chunk at `quality`, a few at a time on the
 * thread pool. The publisher does this for `tender agent publish`; the vessel does it to its own running
 * executable, so that the chunks of the version it runs are on board before the next one is fetched.
 */
export async function chunkFile(file: string, store: ChunkStore, quality: number): Promise<ChunkedFile> {
  const chunker = new Chunker();
  const hash = createHash('sha256');
  const refs: [string, number][] = [];
  const inflight = new Set<Promise<void>>();
  const queued = new Set<string>();
  let added = 0;
  const add = async (c: Chunk) => {
    refs.push([c.digest, c.data.byteLength]);
    if (queued.has(c.digest) || store.has(c.digest)) return;
    queued.add(c.digest);
    added++;
    while (inflight.size >= 4) await Promise.race(inflight);
    const p: Promise<void> = brotliAsync(c.data, params(quality, c.data.byteLength))
      .then((z) => store.put(c.digest, z, c.data.byteLength))
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  let size = 0;
  for await (const piece of createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(piece);
    size += piece.byteLength;
    for (const c of chunker.push(piece)) await add(c);
  }
  for (const c of chunker.flush()) await add(c);
  await Promise.all(inflight);
  const blob = encodeLayerIndex({ meta: Buffer.alloc(0), contentSize: size, chunks: refs });
  const digest = createHash('sha256').update(blob).digest('hex');
  if (!store.has(digest))
    store.put(digest, brotliCompressSync(blob, params(quality, blob.byteLength)), blob.byteLength);
  return { size, sha256: hash.digest('hex'), index: [digest, blob.byteLength, store.size(digest)], added };
}
