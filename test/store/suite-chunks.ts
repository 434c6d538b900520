import { randomBytes } from 'node:crypto';
import { text } from 'node:stream/consumers';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { HubChunkStore } from '../../hub/store/hub-store.js';
import { expectSameBytes, makeChunk, rejectsWith, sha256 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

async function bytesOf(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

async function putAll(chunks: HubChunkStore, n: number) {
  const made = Array.from({ length: n }, () => makeChunk());
  for (const c of made) await chunks.put(c.digest, c.compressed, c.raw.byteLength);
  return made;
}

export function chunkTests(open: OpenStore): void {
  describe('chunks', () => {
    it('stores a chunk only when it inflates to its size and digest, once', async () => {
      const { store } = await open();
      const c = makeChunk();
      await expect(store.chunks.put(c.digest, c.compressed, c.raw.byteLength + 1)).rejects.toThrow(/declared/);
      await expect(store.chunks.put(sha256('other'), c.compressed, c.raw.byteLength)).rejects.toThrow(/digest/);
      await expect(store.chunks.put(c.digest, Buffer.from('not brotli'), c.raw.byteLength)).rejects.toThrow();
      expect(await store.chunks.has(c.digest)).toBe(false);
      expect(await store.chunks.has(sha256('other'))).toBe(false);
      expect(await store.chunks.put(c.digest, c.compressed, c.raw.byteLength)).toBe(true);
      expect(await store.chunks.put(c.digest, c.compressed, c.raw.byteLength)).toBe(false);
      expect(await store.chunks.has(c.digest)).toBe(true);
      expect(await store.chunks.size(c.digest)).toBe(c.compressed.byteLength);
      expect(await store.chunks.read(c.digest)).toEqual(c.compressed);
      await expect(store.chunks.has('../../etc/passwd')).rejects.toThrow(/not a chunk digest/);
    });

    it('answers which of many chunks it lacks, in the order asked, and the sizes of those it has', async () => {
      const { store } = await open();
      const have = await putAll(store.chunks, 12);
      // Enough absent digests in one shard that a store listing shards takes that path too.
      const shard = have[0]!.digest.slice(0, 2);
      const absent = Array.from({ length: 10 }, (_, i) => shard + sha256(`absent ${i}`).slice(2));
      const asked = [absent[0]!, ...have.map((c) => c.digest), ...absent.slice(1), absent[0]!];
      expect(await store.chunks.missing(asked)).toEqual([...absent, absent[0]!]);
      expect(await store.chunks.missing([])).toEqual([]);
      const sizes = await store.chunks.sizes(asked);
      expect(new Map([...sizes].sort())).toEqual(
        new Map(have.map((c) => [c.digest, c.compressed.byteLength] as const).sort()),
      );
      expect(await store.chunks.size(absent[1]!)).toBeUndefined();
    });

    it('gives identical bytes for every range, read or streamed', async () => {
      const { store } = await open();
      // Incompressible and larger than a file stream's 64 KB buffer, so streamed ranges span reads.
      const big = makeChunk(randomBytes(200_000));
      const small = makeChunk(Buffer.from('tender '.repeat(40)));
      for (const c of [big, small]) await store.chunks.put(c.digest, c.compressed, c.raw.byteLength);
      for (const c of [big, small]) {
        const all = c.compressed;
        const n = all.byteLength;
        const cuts = [0, 1, 2, 35, 36, 1000, 65_535, 65_536, 65_537, 131_072, n - 1, n].filter((x) => x <= n);
        for (const start of cuts)
          for (const end of cuts) {
            if (end < start) continue;
            expectSameBytes(await store.chunks.readRange(c.digest, start, end), all.subarray(start, end));
            expectSameBytes(
              await bytesOf(await store.chunks.stream(c.digest, { start, end })),
              all.subarray(start, end),
            );
          }
        expectSameBytes(await bytesOf(await store.chunks.stream(c.digest)), all);
        expectSameBytes(await store.chunks.read(c.digest), all);
      }
      expect(await text(await store.chunks.stream(small.digest, { start: 0, end: 0 }))).toBe('');
    });

    it('refuses ranges outside the chunk and reads of absent chunks before any byte flows', async () => {
      const { store } = await open();
      const c = makeChunk();
      await store.chunks.put(c.digest, c.compressed, c.raw.byteLength);
      const n = c.compressed.byteLength;
      for (const [start, end] of [
        [5, 4],
        [0, n + 1],
        [-1, 3],
        [n + 1, n + 2],
        [0.5, 2],
      ] as const) {
        await rejectsWith(store.chunks.readRange(c.digest, start, end), 'bad_range');
        await rejectsWith(store.chunks.stream(c.digest, { start, end }), 'bad_range');
      }
      const gone = sha256('never stored');
      await rejectsWith(store.chunks.read(gone), 'chunk_missing');
      await rejectsWith(store.chunks.readRange(gone, 0, 1), 'chunk_missing');
      await rejectsWith(store.chunks.stream(gone), 'chunk_missing');
    });

    it('drops a chunk on request, which is then simply missing', async () => {
      const { store, another } = await open();
      const [c] = await putAll(store.chunks, 1);
      const other = await another();
      expect(await other.chunks.read(c!.digest)).toEqual(c!.compressed);
      await store.chunks.remove(c!.digest);
      await store.chunks.remove(c!.digest);
      expect(await other.chunks.has(c!.digest)).toBe(false);
      expect(await store.chunks.missing([c!.digest])).toEqual([c!.digest]);
    });
  });

  describe('the store itself', () => {
    it('answers the readiness probe while open, and refuses once closed', async () => {
      const { store, another } = await open();
      const other = await another();
      await expect(store.ping()).resolves.toBeUndefined();
      await other.close();
      await expect(other.ping()).rejects.toThrow();
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
