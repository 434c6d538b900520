import { TenderError } from '../errors.js';

/**
 * A byte delta of `target` against `base` (a layer index against the one the vessel holds: the same tar
 * headers with new mtimes, the same chunk list with a few chunks changed). Ops, as varints: (len << 1)
 * for `len` literal bytes that follow, or (len << 1 | 1) then a zigzag offset for `len` bytes copied from
 * the base. The offset is relative to where the base cursor would continue (the end of the last copy plus
 * the literals since), so a run of headers that differ only in a field or two encodes as the same few
 * bytes again and again, which brotli then takes down to almost nothing.
 */
export class DeltaError extends TenderError {}

// Matches are found through a hash of this many bytes, sampled every STRIDE bytes of the base.
const KEY = 12;
const STRIDE = 4;
// A copy shorter than this costs more ops than its literals would.
const MIN_COPY = 8;

function hashAt(b: Uint8Array, i: number, bits: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < KEY; k++) h = Math.imul(h ^ b[i + k]!, 0x01000193);
  return h >>> (32 - bits);
}

function varint(n: number, out: number[]): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function matchLength(a: Uint8Array, i: number, b: Uint8Array, j: number): number {
  let n = 0;
  while (i + n < a.byteLength && j + n < b.byteLength && a[i + n] === b[j + n]) n++;
  return n;
}

export function encodeDelta(base: Uint8Array, target: Uint8Array): Buffer {
  const bits = Math.max(10, Math.min(24, Math.ceil(Math.log2(base.byteLength / STRIDE + 1)) + 1));
  const table = new Int32Array(1 << bits).fill(-1);
  for (let p = 0; p + KEY <= base.byteLength; p += STRIDE) table[hashAt(base, p, bits)] = p;
  const out: number[] = [];
  const chunks: Buffer[] = [];
  const flushOut = () => {
    if (out.length) chunks.push(Buffer.from(out));
    out.length = 0;
  };
  let cursor = 0; // where the base would continue
  let litStart = 0;
  let i = 0;
  const emitLiterals = (end: number) => {
    const n = end - litStart;
    if (n <= 0) return;
    varint(n * 2, out);
    flushOut();
    chunks.push(Buffer.from(target.subarray(litStart, end)));
    cursor += n;
  };
  while (i < target.byteLength) {
    // First: does the base continue here, right where the cursor says (a field changed, the rest same)?
    let src = -1;
    let len = 0;
    if (cursor >= 0 && cursor < base.byteLength) {
      const n = matchLength(target, i, base, cursor);
      if (n >= MIN_COPY) {
        src = cursor;
        len = n;
      }
    }
    if (src < 0 && i + KEY <= target.byteLength) {
      const p = table[hashAt(target, i, bits)]!;
      if (p >= 0) {
        const n = matchLength(target, i, base, p);
        if (n >= Math.max(MIN_COPY, KEY)) {
          src = p;
          len = n;
        }
      }
    }
    if (src < 0) {
      i++;
      continue;
    }
    // Extend the match backwards into the pending literals.
    while (i > litStart && src > 0 && target[i - 1] === base[src - 1]) {
      i--;
      src--;
      len++;
    }
    emitLiterals(i);
    varint(len * 2 + 1, out);
    const rel = src - cursor;
    varint(rel >= 0 ? rel * 2 : -rel * 2 - 1, out);
    cursor = src + len;
    i += len;
    litStart = i;
  }
  emitLiterals(target.byteLength);
  flushOut();
  return Buffer.concat(chunks);
}

/** Apply a delta; the result may not exceed `maxBytes` (a hostile delta stops there). */
export function applyDelta(base: Uint8Array, delta: Uint8Array, maxBytes: number): Buffer {
  const parts: Uint8Array[] = [];
  let total = 0;
  let off = 0;
  let cursor = 0;
  const read = (): number => {
    let n = 0;
    let mul = 1;
    for (let k = 0; k < 8; k++) {
      if (off >= delta.byteLength) throw new DeltaError('delta truncated');
      const b = delta[off++]!;
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) return n;
      mul *= 0x80;
    }
    throw new DeltaError('delta varint too long');
  };
  while (off < delta.byteLength) {
    const op = read();
    const len = Math.floor(op / 2);
    if (total + len > maxBytes) throw new DeltaError(`delta builds more than ${maxBytes} bytes`);
    if (op % 2 === 0) {
      if (off + len > delta.byteLength) throw new DeltaError('delta literals truncated');
      parts.push(delta.subarray(off, off + len));
      off += len;
      cursor += len;
    } else {
      const z = read();
      const src = cursor + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
      if (src < 0 || src + len > base.byteLength) throw new DeltaError('delta copies outside its base');
      parts.push(base.subarray(src, src + len));
      cursor = src + len;
    }
    total += len;
  }
  return Buffer.concat(parts, total);
}
