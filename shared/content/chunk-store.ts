import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { join } from 'node:path';
import { TenderError } from '../errors.js';

export class ChunkError extends TenderError {}

const DIGEST_RE = /^[0-9a-f]{64}$/;
// Asked about this many chunks of one shard directory, list it rather than stat each.
const LIST_SHARD_AT = 8;
// A content chunk is at most 64 KB; image configs and layer indexes (a layer's tar headers, ~800 bytes
// per file) travel as single chunks too: 64 MB covers ~80,000 files and bounds what one inflate may use.
export const MAX_CHUNK_RAW_BYTES = 64 * 1024 * 1024;

/**
 * Content-addressed chunk files: <dir>/<first two hex>/<sha256 of the raw content>, holding the brotli-
 * compressed bytes. A file is written to a temp name and renamed, so a crash leaves a whole chunk or none;
 * every reader verifies content against the name anyway, so a damaged file is just a missing chunk.
 */
export function createChunkStore(dir: string) {
  const pathOf = (digest: string) => {
    if (!DIGEST_RE.test(digest)) throw new ChunkError(`not a chunk digest: ${JSON.stringify(digest).slice(0, 80)}`);
    return join(dir, digest.slice(0, 2), digest);
  };
  return {
    has(digest: string): boolean {
      return existsSync(pathOf(digest));
    },
    /**
     * The digests not in the store, in the order given. A shard asked about many times is listed once
     * instead (a release's ~20,000 chunks: one readdir per shard, not a stat per chunk).
     */
    missing(digests: Iterable<string>): string[] {
      const list = [...digests];
      const perShard = new Map<string, number>();
      for (const d of list) {
        pathOf(d);
        perShard.set(d.slice(0, 2), (perShard.get(d.slice(0, 2)) ?? 0) + 1);
      }
      const listed = new Map<string, Set<string>>();
      for (const [shard, n] of perShard) {
        if (n < LIST_SHARD_AT) continue;
        try {
          listed.set(shard, new Set(readdirSync(join(dir, shard))));
        } catch {
          listed.set(shard, new Set());
        }
      }
      return list.filter((d) => {
        const names = listed.get(d.slice(0, 2));
        return names ? !names.has(d) : !existsSync(pathOf(d));
      });
    },
    size(digest: string): number {
      return statSync(pathOf(digest)).size;
    },
    get(digest: string): Buffer {
      return readFileSync(pathOf(digest));
    },
    /** Drop one chunk (found damaged): it is then simply missing, and fetched again. */
    remove(digest: string): void {
      rmSync(pathOf(digest), { force: true });
    },
    /** Delete every chunk not in `keep`; returns how many files and bytes went. */
    gc(keep: Set<string>): { files: number; bytes: number } {
      let files = 0;
      let bytes = 0;
      if (!existsSync(dir)) return { files, bytes };
      for (const sub of readdirSync(dir)) {
        if (!/^[0-9a-f]{2}$/.test(sub)) continue;
        for (const f of readdirSync(join(dir, sub))) {
          if (keep.has(f)) continue;
          const p = join(dir, sub, f);
          bytes += statSync(p).size;
          rmSync(p, { force: true });
          files++;
        }
      }
      return { files, bytes };
    },
    /** Store compressed bytes after checking they inflate to exactly `rawSize` bytes with this digest. */
    put(digest: string, compressed: Buffer, rawSize: number): void {
      verifyCompressedChunk(digest, compressed, rawSize);
      const path = pathOf(digest);
      if (existsSync(path)) return;
      mkdirSync(join(dir, digest.slice(0, 2)), { recursive: true });
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, compressed);
      renameSync(tmp, path);
    },
    /**
     * Store a chunk that arrived raw (unpacked from a solid group or built from a delta) after checking its
     * digest; compressed here at a quality a vessel's CPU affords (the link was the costly part).
     */
    putRaw(digest: string, raw: Buffer): void {
      if (createHash('sha256').update(raw).digest('hex') !== digest)
        throw new ChunkError(`chunk ${digest.slice(0, 12)}: content does not match its digest`);
      const path = pathOf(digest);
      if (existsSync(path)) return;
      const compressed = brotliCompressSync(raw, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength },
      });
      mkdirSync(join(dir, digest.slice(0, 2)), { recursive: true });
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, compressed);
      renameSync(tmp, path);
    },
    /** The raw bytes of a chunk on board, checked against its digest; undefined when absent or damaged. */
    getRaw(digest: string): Buffer | undefined {
      const path = pathOf(digest);
      if (!existsSync(path)) return undefined;
      try {
        const raw = brotliDecompressSync(readFileSync(path), { maxOutputLength: MAX_CHUNK_RAW_BYTES });
        return createHash('sha256').update(raw).digest('hex') === digest ? raw : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

export type ChunkStore = ReturnType<typeof createChunkStore>;

/** Inflate under a cap of the declared size (a bomb stops there) and check the digest. */
export function verifyCompressedChunk(digest: string, compressed: Buffer, rawSize: number): Buffer {
  if (!DIGEST_RE.test(digest)) throw new ChunkError('not a chunk digest');
  if (!Number.isInteger(rawSize) || rawSize < 0 || rawSize > MAX_CHUNK_RAW_BYTES)
    throw new ChunkError(`chunk ${digest.slice(0, 12)}: size ${rawSize} out of range`);
  let raw: Buffer;
  try {
    raw = brotliDecompressSync(compressed, { maxOutputLength: Math.max(1, rawSize) });
  } catch (err) {
    throw new ChunkError(
      `chunk ${digest.slice(0, 12)}: does not inflate to its declared ${rawSize} bytes (${(err as Error).message})`,
    );
  }
  if (raw.byteLength !== rawSize)
    throw new ChunkError(`chunk ${digest.slice(0, 12)}: inflates to ${raw.byteLength} bytes, declared ${rawSize}`);
  if (createHash('sha256').update(raw).digest('hex') !== digest)
    throw new ChunkError(`chunk ${digest.slice(0, 12)}: content does not match its digest`);
  return raw;
}
