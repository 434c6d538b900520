import { createHash } from 'node:crypto';

// Hand-written on purpose: cut points must be stable byte for byte across versions and machines (a
// vessel's chunks of v1 must match the publisher's of v2), so the chunker is ours, small and tested.

/**
 * Content-defined chunking (FastCDC: gear hash with normalised chunking). A cut depends only on the
 * bytes just before it, so an edit or an inserted file moves a few cut points, not every one after it:
 * v2 of a layer shares most chunks with v1 and a vessel fetches only the new ones.
 */

// ~16 KB chunks: DESIGN.md's measurement found ~17 KB a good trade between dedupe and list size.
export const CHUNK_MIN = 4 * 1024;
export const CHUNK_AVG = 16 * 1024;
export const CHUNK_MAX = 64 * 1024;

// Normalised chunking: a harder mask below the average size, an easier one above, so sizes cluster.
// The top bits of a gear hash depend on the most bytes (a 32-byte window), so the masks use those.
const MASK_S = 0xfffe0000 >>> 0; // 15 bits: a cut 1 in 32,768 positions before the average
const MASK_L = 0xffe00000 >>> 0; // 11 bits: 1 in 2,048 after it

/** A fixed gear table (seeded, so every publisher cuts the same bytes the same way). */
const GEAR = (() => {
  const t = new Uint32Array(256);
  let s = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    t[i] = s;
  }
  return t;
})();

function popcount(x: number): number {
  let n = 0;
  for (let v = x >>> 0; v; v &= v - 1) n++;
  return n;
}

// The masks above are chosen for their bit counts; keep that checkable.
export const MASK_BITS = { small: popcount(MASK_S), large: popcount(MASK_L) };

/** Length of the next chunk starting at `start` (all of the rest when it is shorter than the minimum). */
export function nextCut(buf: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n <= CHUNK_MIN) return n;
  const normal = Math.min(n, CHUNK_AVG);
  const max = Math.min(n, CHUNK_MAX);
  let h = 0;
  let i = CHUNK_MIN;
  for (; i < normal; i++) {
    h = ((h << 1) + GEAR[buf[start + i]!]!) >>> 0;
    if ((h & MASK_S) === 0) return i + 1;
  }
  for (; i < max; i++) {
    h = ((h << 1) + GEAR[buf[start + i]!]!) >>> 0;
    if ((h & MASK_L) === 0) return i + 1;
  }
  return max;
}

export interface Chunk {
  /** sha256 of the chunk's bytes, hex. */
  digest: string;
  data: Buffer;
}

/**
 * Chunk a stream: feed buffers in order, take whole chunks out; at the end, flush the remainder. Holds at
 * most one maximum-size chunk of look-ahead, so a multi-gigabyte layer streams in constant memory.
 */
export class Chunker {
  private pending: Buffer = Buffer.alloc(0);

  push(data: Buffer): Chunk[] {
    this.pending = this.pending.byteLength ? Buffer.concat([this.pending, data]) : data;
    const out: Chunk[] = [];
    let off = 0;
    // Only cut when a full maximum chunk is available, so a cut never depends on where a read ended.
    while (this.pending.byteLength - off >= CHUNK_MAX) {
      const len = nextCut(this.pending, off, this.pending.byteLength);
      out.push(makeChunk(this.pending.subarray(off, off + len)));
      off += len;
    }
    this.pending = Buffer.from(this.pending.subarray(off));
    return out;
  }

  flush(): Chunk[] {
    const out: Chunk[] = [];
    let off = 0;
    while (off < this.pending.byteLength) {
      const len = nextCut(this.pending, off, this.pending.byteLength);
      out.push(makeChunk(this.pending.subarray(off, off + len)));
      off += len;
    }
    this.pending = Buffer.alloc(0);
    return out;
  }
}

function makeChunk(data: Buffer): Chunk {
  return { digest: createHash('sha256').update(data).digest('hex'), data: Buffer.from(data) };
}

export function chunkAll(buf: Buffer): Chunk[] {
  const c = new Chunker();
  return [...c.push(buf), ...c.flush()];
}
