import { createHash } from 'node:crypto';
import { brotliCompressSync, constants } from 'node:zlib';
import { TenderError } from '../shared/errors.js';
import { Chunker, type Chunk } from '../shared/chunking.js';
import type { ChunkStore } from '../shared/chunk-store.js';
import type { DockerEngine } from '../shared/docker.js';
import type { ChunkRef, ReleaseManifest } from '../shared/manifest.js';
import { TarReader } from '../shared/tar-reader.js';

export class ImageChunkError extends TenderError {}

// Chunks are compressed once on shore and read by a whole fleet: brotli's best level pays for itself.
const BROTLI_QUALITY = 11;

interface EntryChunks {
  size: number;
  sha256: string;
  chunks: ChunkRef[];
}

/**
 * Split every file of `docker save IMAGE` into content-defined chunks, compress each into the local chunk
 * cache (skipping chunks already there: a re-publish costs almost nothing), and return the image's config
 * and layers as chunk lists, checked against the image ID and the layer diff IDs.
 */
export async function chunkImage(docker: DockerEngine, imageId: string, diffIds: string[], cache: ChunkStore): Promise<Pick<ReleaseManifest['images'][string], 'layers' | 'config'>> {
  const entries = new Map<string, EntryChunks>();
  let smallFiles = new Map<string, Buffer[]>();
  let current: { name: string; chunker: Chunker; hash: ReturnType<typeof createHash>; refs: ChunkRef[]; size: number; keep: boolean } | undefined;
  const store = (chunks: Chunk[]) => {
    for (const c of chunks) {
      let comp: number;
      if (cache.has(c.digest)) comp = cache.size(c.digest);
      else {
        const compressed = brotliCompressSync(c.data, { params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: c.data.byteLength } });
        cache.put(c.digest, compressed, c.data.byteLength);
        comp = compressed.byteLength;
      }
      current!.refs.push([c.digest, c.data.byteLength, comp]);
    }
  };
  const reader = new TarReader({
    onEntry(e) {
      current = e.type === 'file' ? { name: e.name, chunker: new Chunker(), hash: createHash('sha256'), refs: [], size: 0, keep: e.name.endsWith('.json') && e.size < 1024 * 1024 } : undefined;
      if (current?.keep) smallFiles.set(e.name, []);
    },
    onData(piece) {
      if (!current) return;
      current.hash.update(piece);
      current.size += piece.byteLength;
      if (current.keep) smallFiles.get(current.name)!.push(Buffer.from(piece));
      store(current.chunker.push(Buffer.from(piece)));
    },
    onEnd() {
      if (!current) return;
      store(current.chunker.flush());
      entries.set(current.name, { size: current.size, sha256: current.hash.digest('hex'), chunks: current.refs });
      current = undefined;
    },
  });
  const stream = await docker.saveImage(imageId);
  for await (const piece of stream as AsyncIterable<Buffer>) reader.push(piece);

  const manifestJson = smallFiles.get('manifest.json');
  if (!manifestJson) throw new ImageChunkError(`docker save of ${imageId.slice(7, 19)} has no manifest.json`);
  const saved = JSON.parse(Buffer.concat(manifestJson).toString('utf8')) as { Config: string; Layers: string[] }[];
  smallFiles = new Map();
  const first = saved[0];
  if (!first) throw new ImageChunkError(`docker save of ${imageId.slice(7, 19)} lists no image`);
  const config = entries.get(first.Config);
  if (!config || `sha256:${config.sha256}` !== imageId) throw new ImageChunkError(`image config of ${imageId.slice(7, 19)} does not hash to the image ID`);
  if (first.Layers.length !== diffIds.length) throw new ImageChunkError(`image ${imageId.slice(7, 19)}: ${first.Layers.length} layers saved, ${diffIds.length} in its config`);
  const layers = first.Layers.map((name, i) => {
    const e = entries.get(name);
    if (!e) throw new ImageChunkError(`docker save lists layer ${name} but does not contain it`);
    if (`sha256:${e.sha256}` !== diffIds[i]) throw new ImageChunkError(`layer ${name} is not the uncompressed layer ${diffIds[i]}`);
    return { diffId: diffIds[i]!, size: e.size, chunks: e.chunks };
  });
  return { layers, config: { size: config.size, chunks: config.chunks } };
}
