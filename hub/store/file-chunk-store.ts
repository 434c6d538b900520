import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ChunkError, verifyCompressedChunk } from '../../shared/content/chunk-store.js';
import { HubStoreError, type HubChunkStore } from './hub-store.js';

const DIGEST_RE = /^[0-9a-f]{64}$/;
// Asked about this many chunks of one shard directory, list it rather than stat each.
const LIST_SHARD_AT = 8;

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';
const missingChunk = (digest: string) =>
  new HubStoreError(`chunk ${digest.slice(0, 12)} is not in the hub's chunk store`, 'chunk_missing', 409);

/**
 * The hub's chunks as files: <dir>/<first two hex>/<digest>, the layout of shared/content/chunk-store.ts,
 * so a hub's existing DATA/chunks is read as it is (and the publisher's and vessels' synchronous stores
 * keep that module). Asynchronous, so a pack of thousands of chunks never blocks the event loop.
 * A chunk is written to a temp name and renamed: a crash leaves a whole chunk or none.
 */
export function createFileChunkStore(dir: string): HubChunkStore {
  const pathOf = (digest: string) => {
    if (!DIGEST_RE.test(digest)) throw new ChunkError(`not a chunk digest: ${JSON.stringify(digest).slice(0, 80)}`);
    return join(dir, digest.slice(0, 2), digest);
  };
  const sizeOf = async (digest: string): Promise<number | undefined> => {
    try {
      return (await stat(pathOf(digest))).size;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  };
  /** The open file and its size, the range checked against it; the caller closes the handle. */
  const openRange = async (digest: string, range?: { start: number; end: number }) => {
    let fh: FileHandle;
    try {
      fh = await open(pathOf(digest), 'r');
    } catch (err) {
      if (isMissing(err)) throw missingChunk(digest);
      throw err;
    }
    const size = (await fh.stat()).size;
    const { start, end } = range ?? { start: 0, end: size };
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size) {
      await fh.close();
      throw new HubStoreError(
        `chunk ${digest.slice(0, 12)}: range ${start}-${end} is outside its ${size} bytes`,
        'bad_range',
        416,
      );
    }
    return { fh, start, end };
  };

  return {
    async has(digest) {
      return (await sizeOf(digest)) !== undefined;
    },
    /** A shard asked about many times is listed once (a release's ~20,000 chunks: one readdir per shard). */
    async missing(digests) {
      const perShard = new Map<string, number>();
      for (const d of digests) {
        pathOf(d);
        perShard.set(d.slice(0, 2), (perShard.get(d.slice(0, 2)) ?? 0) + 1);
      }
      const listed = new Map<string, Set<string>>();
      await Promise.all(
        [...perShard].map(async ([shard, n]) => {
          if (n < LIST_SHARD_AT) return;
          try {
            listed.set(shard, new Set(await readdir(join(dir, shard))));
          } catch (err) {
            if (!isMissing(err)) throw err;
            listed.set(shard, new Set());
          }
        }),
      );
      const absent = await Promise.all(
        digests.map(async (d) => {
          const names = listed.get(d.slice(0, 2));
          return names ? !names.has(d) : (await sizeOf(d)) === undefined;
        }),
      );
      return digests.filter((_, i) => absent[i]);
    },
    size: sizeOf,
    async sizes(digests) {
      const out = new Map<string, number>();
      const sizes = await Promise.all(digests.map(sizeOf));
      digests.forEach((d, i) => {
        if (sizes[i] !== undefined) out.set(d, sizes[i]);
      });
      return out;
    },
    async put(digest, compressed, rawSize) {
      verifyCompressedChunk(digest, compressed, rawSize);
      const path = pathOf(digest);
      if ((await sizeOf(digest)) !== undefined) return false;
      await mkdir(join(dir, digest.slice(0, 2)), { recursive: true });
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, compressed);
      await rename(tmp, path);
      return true;
    },
    async read(digest) {
      try {
        return await readFile(pathOf(digest));
      } catch (err) {
        if (isMissing(err)) throw missingChunk(digest);
        throw err;
      }
    },
    async readRange(digest, start, end) {
      const r = await openRange(digest, { start, end });
      try {
        const buf = Buffer.alloc(r.end - r.start);
        let off = 0;
        while (off < buf.byteLength) {
          const { bytesRead } = await r.fh.read(buf, off, buf.byteLength - off, r.start + off);
          if (bytesRead === 0) throw new ChunkError(`chunk ${digest.slice(0, 12)} shrank while it was read`);
          off += bytesRead;
        }
        return buf;
      } finally {
        await r.fh.close();
      }
    },
    async stream(digest, range) {
      const r = await openRange(digest, range);
      if (r.start === r.end) {
        await r.fh.close();
        return Readable.from([]);
      }
      // The stream owns the handle from here and closes it when it ends or is destroyed.
      return r.fh.createReadStream({ start: r.start, end: r.end - 1 });
    },
    async remove(digest) {
      await rm(pathOf(digest), { force: true });
    },
  };
}
