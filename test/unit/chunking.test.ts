import { randomBytes, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkAll, Chunker, CHUNK_MAX, CHUNK_MIN, MASK_BITS } from '../../shared/content/chunking.js';

function pseudoRandom(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

describe('content-defined chunking', () => {
  it('reassembles exactly, within the size bounds, averaging near 16 KB', () => {
    const data = pseudoRandom(8 * 1024 * 1024, 7);
    const chunks = chunkAll(data);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
    for (const c of chunks.slice(0, -1)) {
      expect(c.data.byteLength).toBeGreaterThanOrEqual(CHUNK_MIN);
      expect(c.data.byteLength).toBeLessThanOrEqual(CHUNK_MAX);
      expect(c.digest).toBe(createHash('sha256').update(c.data).digest('hex'));
    }
    const avg = data.byteLength / chunks.length;
    expect(avg).toBeGreaterThan(10 * 1024);
    expect(avg).toBeLessThan(24 * 1024);
    expect(MASK_BITS).toEqual({ small: 15, large: 11 });
  });

  it('cuts the same way however the stream is split into reads', () => {
    const data = pseudoRandom(2 * 1024 * 1024, 3);
    const whole = chunkAll(data).map((c) => c.digest);
    const c = new Chunker();
    const pieces = [];
    for (let off = 0; off < data.byteLength;) {
      const n = 1 + Math.floor(Math.random() * 100_000);
      pieces.push(...c.push(data.subarray(off, off + n)));
      off += n;
    }
    pieces.push(...c.flush());
    expect(pieces.map((p) => p.digest)).toEqual(whole);
  });

  it('after an insertion in the middle, keeps almost every chunk', () => {
    const v1 = pseudoRandom(4 * 1024 * 1024, 11);
    const v2 = Buffer.concat([v1.subarray(0, 2_000_000), randomBytes(300), v1.subarray(2_000_000)]);
    const a = new Set(chunkAll(v1).map((c) => c.digest));
    const b = chunkAll(v2);
    const fresh = b.filter((c) => !a.has(c.digest));
    expect(fresh.length).toBeLessThanOrEqual(3);
  });
});

describe('chunk store', () => {
  it('says which chunks it lacks, in the order asked, whether it lists a shard or stats each file', async () => {
    const { createChunkStore } = await import('../../shared/content/chunk-store.js');
    const { brotliCompressSync } = await import('node:zlib');
    const { tempDir } = await import('../helpers/tmp.js');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = tempDir();
    const store = createChunkStore(dir);
    const chunks = Array.from({ length: 600 }, (_, i) => Buffer.from(`chunk ${i}`));
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // Every third one on board: 600 chunks over 256 shards lists the crowded shards and stats the rest.
    chunks.forEach((c, i) => i % 3 === 0 && store.put(digest(c), brotliCompressSync(c), c.byteLength));
    const want = chunks.map(digest).reverse();
    const missing = store.missing(want);
    expect(missing).toEqual(want.filter((d) => !store.has(d)));
    expect(missing).toHaveLength(400);
    // A half-written temp file next to a chunk's name is not the chunk.
    const absent = missing[0]!;
    mkdirSync(join(dir, absent.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, absent.slice(0, 2), `${absent}.0000.tmp`), 'partial');
    expect(store.missing([absent, ...want.slice(0, 20)])[0]).toBe(absent);
    expect(() => store.missing(['../../etc/passwd'])).toThrow(/not a chunk digest/);
  });
});
