import { TenderError } from '../errors.js';

/**
 * A layer's index blob: its tar meta stream (headers, pax records, padding: see tar-split.ts) and the
 * ordered list of content chunks. The blob is stored and fetched as one chunk, addressed by its sha256,
 * which the signed manifest names: a layer the vessel already holds costs the manifest one reference and
 * the link nothing more.
 *
 * Binary, versioned: "TNDRIX01", varint meta length, meta bytes, varint content size, varint chunk count,
 * then per chunk 32 bytes of sha256 and a varint raw size.
 */
export class LayerIndexError extends TenderError {}

const MAGIC = Buffer.from('TNDRIX01', 'latin1');

export interface LayerIndex {
  meta: Buffer;
  contentSize: number;
  /** [sha256 hex, raw size] in content order. */
  chunks: [string, number][];
}

function varint(n: number, out: number[]): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

export function encodeLayerIndex(ix: LayerIndex): Buffer {
  const head: number[] = [];
  varint(ix.meta.byteLength, head);
  const mid: number[] = [];
  varint(ix.contentSize, mid);
  varint(ix.chunks.length, mid);
  const list: Buffer[] = [];
  for (const [digest, raw] of ix.chunks) {
    const v: number[] = [];
    varint(raw, v);
    list.push(Buffer.from(digest, 'hex'), Buffer.from(v));
  }
  return Buffer.concat([MAGIC, Buffer.from(head), ix.meta, Buffer.from(mid), ...list]);
}

/** Parse strictly: a short, long or inconsistent blob is an error naming what is wrong. */
export function decodeLayerIndex(buf: Buffer): LayerIndex {
  let off = 0;
  const fail = (what: string): never => {
    throw new LayerIndexError(`layer index: ${what} (at byte ${off} of ${buf.byteLength})`);
  };
  const read = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (off >= buf.byteLength) fail('truncated');
      const b = buf[off++]!;
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) {
        if (!Number.isSafeInteger(n)) fail('number too large');
        return n;
      }
      mul *= 0x80;
    }
    return fail('varint too long');
  };
  if (buf.byteLength < MAGIC.byteLength || !buf.subarray(0, MAGIC.byteLength).equals(MAGIC))
    fail('not a Tender layer index');
  off = MAGIC.byteLength;
  const metaLen = read();
  if (off + metaLen > buf.byteLength) fail('meta stream truncated');
  const meta = buf.subarray(off, off + metaLen);
  off += metaLen;
  const contentSize = read();
  const count = read();
  // Each entry takes at least 33 bytes: a count that cannot fit is a lie, not an allocation to make.
  if (count * 33 > buf.byteLength - off) fail(`${count} chunks cannot fit`);
  const chunks: [string, number][] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (off + 32 > buf.byteLength) fail('chunk list truncated');
    const digest = buf.subarray(off, off + 32).toString('hex');
    off += 32;
    const raw = read();
    total += raw;
    chunks.push([digest, raw]);
  }
  if (off !== buf.byteLength) fail('trailing bytes');
  if (total !== contentSize) fail(`chunks add up to ${total} bytes, content is ${contentSize}`);
  return { meta, contentSize, chunks };
}
