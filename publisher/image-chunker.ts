import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, constants } from 'node:zlib';
import { TenderError } from '../shared/errors.js';
import { Chunker, type Chunk } from '../shared/content/chunking.js';
import { MAX_CHUNK_RAW_BYTES, type ChunkStore } from '../shared/content/chunk-store.js';
import type { DockerEngine } from '../shared/docker.js';
import { encodeLayerIndex } from '../shared/content/layer-index.js';
import type { ChunkRef, ReleaseManifest } from '../shared/protocol/manifest.js';
import { TarReader } from '../shared/content/tar-reader.js';
import { looksLikeTar, TarFormatError, TarPolicyError, TarSplitter } from '../shared/content/tar-split.js';

export class ImageChunkError extends TenderError {}

// Chunks are compressed once on shore and read by a whole fleet: brotli's best level pays for itself
// (6 % fewer bytes than quality 9 on this fleet's images), and the work runs on every core.
const BROTLI_QUALITY = 11;
// Layer indexes are mostly tar headers, alike across a layer: a 16 MB window lets brotli see them all.
const INDEX_LGWIN = 24;
const brotliAsync = promisify(brotliCompress);

const brotliParams = (size: number, lgwin = 22) => ({
  params: {
    [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [constants.BROTLI_PARAM_LGWIN]: lgwin,
    [constants.BROTLI_PARAM_SIZE_HINT]: size,
  },
});

/** Compress new chunks into the cache on the thread pool, a few at a time, skipping ones already there. */
function compressPool(cache: ChunkStore) {
  const limit = Math.max(2, availableParallelism());
  const inflight = new Set<Promise<void>>();
  const queued = new Set<string>();
  return {
    async add(c: Chunk): Promise<void> {
      if (queued.has(c.digest) || cache.has(c.digest)) return;
      queued.add(c.digest);
      while (inflight.size >= limit) await Promise.race(inflight);
      const p: Promise<void> = brotliAsync(c.data, brotliParams(c.data.byteLength))
        .then((compressed) => cache.put(c.digest, compressed, c.data.byteLength))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    },
    async drain(): Promise<void> {
      await Promise.all(inflight);
    },
  };
}

function storeSync(cache: ChunkStore, digest: string, data: Buffer, lgwin?: number): ChunkRef {
  if (!cache.has(digest))
    cache.put(digest, brotliCompressSync(data, brotliParams(data.byteLength, lgwin)), data.byteLength);
  return [digest, data.byteLength, cache.size(digest)];
}

type Entry = { size: number; sha256: string } & (
  { kind: 'plain'; chunks: ChunkRef[] } | { kind: 'layer'; index: ChunkRef }
);

/** One file of the `docker save` stream: a layer tar is split (tar-split) and its content chunked. */
class EntrySink {
  private head: Buffer[] = [];
  private headBytes = 0;
  private mode?: 'plain' | 'layer';
  private readonly hash = createHash('sha256');
  private readonly chunker = new Chunker();
  private size = 0;
  private plainRefs: Chunk[] = [];
  private layerRefs: [string, number][] = [];
  private meta: Buffer[] = [];
  private metaBytes = 0;
  private splitter?: TarSplitter;
  readonly kept: Buffer[] = [];

  constructor(
    readonly name: string,
    private readonly newChunk: (c: Chunk) => void,
    private readonly keep: boolean,
  ) {}

  push(piece: Buffer): void {
    this.hash.update(piece);
    this.size += piece.byteLength;
    if (this.keep) this.kept.push(Buffer.from(piece));
    if (this.mode) return this.route(piece);
    this.head.push(Buffer.from(piece));
    this.headBytes += piece.byteLength;
    if (this.headBytes >= 512) this.decide();
  }

  private decide(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    // Layers are tars; configs and the save's own JSON are not (a JSON file cannot carry a tar checksum).
    this.mode = !this.name.endsWith('.json') && looksLikeTar(head) ? 'layer' : 'plain';
    if (this.mode === 'layer') {
      this.splitter = new TarSplitter({
        meta: (b) => {
          this.metaBytes += b.byteLength;
          if (this.metaBytes > MAX_CHUNK_RAW_BYTES)
            throw new ImageChunkError(
              `layer ${this.name}: tar headers exceed ${MAX_CHUNK_RAW_BYTES / 2 ** 20} MB (too ` +
                `many files in one layer)`,
            );
          this.meta.push(Buffer.from(b));
        },
        content: (b) => this.take(this.chunker.push(Buffer.from(b))),
      });
    }
    this.route(head);
  }

  private route(piece: Buffer): void {
    if (this.splitter) this.splitter.push(piece);
    else this.take(this.chunker.push(Buffer.from(piece)));
  }

  private take(chunks: Chunk[]): void {
    for (const c of chunks) {
      if (this.mode === 'plain') {
        this.plainRefs.push(c);
        continue;
      }
      this.layerRefs.push([c.digest, c.data.byteLength]);
      this.newChunk(c);
    }
  }

  end(cache: ChunkStore): Entry {
    if (!this.mode) {
      this.mode = 'plain';
      this.route(Buffer.concat(this.head));
    }
    const sha256 = this.hash.digest('hex');
    if (this.splitter) {
      this.splitter.end();
      this.take(this.chunker.flush());
      const blob = encodeLayerIndex({
        meta: Buffer.concat(this.meta),
        contentSize: this.layerRefs.reduce((a, c) => a + c[1], 0),
        chunks: this.layerRefs,
      });
      if (blob.byteLength > MAX_CHUNK_RAW_BYTES)
        throw new ImageChunkError(
          `layer ${this.name}: its index (${blob.byteLength} bytes) exceeds ${MAX_CHUNK_RAW_BYTES / 2 ** 20} MB`,
        );
      const index = storeSync(cache, createHash('sha256').update(blob).digest('hex'), blob, INDEX_LGWIN);
      return { kind: 'layer', size: this.size, sha256, index };
    }
    this.take(this.chunker.flush());
    return {
      kind: 'plain',
      size: this.size,
      sha256,
      chunks: this.plainRefs.map((c) => storeSync(cache, c.digest, c.data)),
    };
  }
}

/**
 * Read `docker save IMAGE`: split each layer tar into its headers (kept in the layer's index blob) and
 * its file contents (content-defined chunks), compress every new chunk into the local cache (a re-publish
 * costs almost nothing), and return the image's config and layers, checked against the image ID and diff
 * IDs. Each layer passes the tar entry rules on the way (tar-split.ts), so a bad image fails here first.
 */
export async function chunkImage(
  docker: DockerEngine,
  imageId: string,
  diffIds: string[],
  cache: ChunkStore,
  progress: (bytesRead: number) => void = () => {},
): Promise<Pick<ReleaseManifest['images'][string], 'layers' | 'config'>> {
  const entries = new Map<string, Entry & { kept: Buffer[] }>();
  const pool = compressPool(cache);
  let queue: Chunk[] = [];
  let sink: EntrySink | undefined;
  const reader = new TarReader({
    onEntry(e) {
      sink =
        e.type === 'file' ? new EntrySink(e.name, (c) => queue.push(c), e.name.endsWith('manifest.json')) : undefined;
    },
    onData(piece) {
      sink?.push(piece);
    },
    onEnd() {
      if (!sink) return;
      const s = sink;
      entries.set(s.name, { ...s.end(cache), kept: s.kept });
      sink = undefined;
    },
  });
  const stream = await docker.saveImage(imageId);
  let read = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      reader.push(piece);
      read += piece.byteLength;
      progress(read);
      const batch = queue;
      queue = [];
      for (const c of batch) await pool.add(c);
    }
  } catch (err) {
    (stream as { destroy?: () => void }).destroy?.();
    if (err instanceof TarPolicyError || err instanceof TarFormatError)
      throw new ImageChunkError(`image ${imageId.slice(7, 19)}${sink ? ` (${sink.name})` : ''}: ${err.message}`);
    throw err;
  } finally {
    await pool.drain();
  }
  return assemble(imageId, diffIds, entries);
}

function assemble(
  imageId: string,
  diffIds: string[],
  entries: Map<string, Entry & { kept: Buffer[] }>,
): Pick<ReleaseManifest['images'][string], 'layers' | 'config'> {
  const short = imageId.slice(7, 19);
  const manifestJson = entries.get('manifest.json');
  if (!manifestJson) throw new ImageChunkError(`docker save of ${short} has no manifest.json`);
  const saved = JSON.parse(Buffer.concat(manifestJson.kept).toString('utf8')) as { Config: string; Layers: string[] }[];
  const first = saved[0];
  if (!first) throw new ImageChunkError(`docker save of ${short} lists no image`);
  const config = entries.get(first.Config);
  if (!config || config.kind !== 'plain' || `sha256:${config.sha256}` !== imageId)
    throw new ImageChunkError(`image config of ${short} does not hash to the image ID`);
  if (first.Layers.length !== diffIds.length)
    throw new ImageChunkError(`image ${short}: ${first.Layers.length} layers saved, ${diffIds.length} in its config`);
  const layers = first.Layers.map((name, i) => {
    const e = entries.get(name);
    if (!e) throw new ImageChunkError(`docker save lists layer ${name} but does not contain it`);
    if (`sha256:${e.sha256}` !== diffIds[i])
      throw new ImageChunkError(`layer ${name} is not the uncompressed layer ${diffIds[i]}`);
    if (e.kind !== 'layer') throw new ImageChunkError(`layer ${name} of ${short} is not a tar`);
    return { diffId: diffIds[i]!, size: e.size, index: e.index };
  });
  return { layers, config: { size: config.size, chunks: config.chunks } };
}
