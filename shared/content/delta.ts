import { TenderError } from '../errors.js';

/**
 * A byte delta of `target` against `base` (a layer index against the one the vessel holds: the same tar
 * headers with new mtimes, the same chunk list with a few chunks changed). Ops, as varints: (len << 1)
 * for `len` literal bytes that follow, or (len << 1 | 1) then a zigzag offset for `len` bytes copied from
 * the base. The offset is relative to where the base cursor would continue (the end of the last copy plus
 * the literals since), so a run of headers that differ only in a field or two encodes as the same few
 * bytes again and again, which brotli then takes down to almost nothing.
 *
 * This is format 1 (blob magic TNDRDL01, solid.ts); tar-delta.ts is format 2, which adds an op for a tar
 * header equal to a base header but for its mtime. The matcher, varints and the capped reader are shared.
 */
export class DeltaError extends TenderError {}

// Matches are found through a hash of this many bytes, sampled every STRIDE bytes of the base.
const KEY = 12;
const STRIDE = 4;
// A copy shorter than this costs more ops than its literals would.
export const MIN_COPY = 8;

function hashAt(b: Uint8Array, i: number, bits: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < KEY; k++) h = Math.imul(h ^ b[i + k]!, 0x01000193);
  return h >>> (32 - bits);
}

export function varint(n: number, out: number[]): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

export const zigzag = (n: number) => (n >= 0 ? n * 2 : -n * 2 - 1);
export const unzigzag = (z: number) => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);

function matchLength(a: Uint8Array, i: number, b: Uint8Array, j: number, limit: number): number {
  let n = 0;
  while (i + n < limit && j + n < b.byteLength && a[i + n] === b[j + n]) n++;
  return n;
}

/**
 * Where the base matches `target` at `i`: first where the cursor says the base continues (a field
 * changed, the rest the same), else through the hash of the next KEY bytes. The match stops at `limit`
 * and reaches back as far as `from` (the pending literals): it starts at `at` of the target.
 */
export function baseMatcher(base: Uint8Array) {
  const bits = Math.max(10, Math.min(24, Math.ceil(Math.log2(base.byteLength / STRIDE + 1)) + 1));
  const table = new Int32Array(1 << bits).fill(-1);
  for (let p = 0; p + KEY <= base.byteLength; p += STRIDE) table[hashAt(base, p, bits)] = p;
  const forward = (target: Uint8Array, i: number, cursor: number, limit: number) => {
    if (cursor >= 0 && cursor < base.byteLength) {
      const n = matchLength(target, i, base, cursor, limit);
      if (n >= MIN_COPY) return { src: cursor, len: n };
    }
    if (i + KEY > limit) return undefined;
    const p = table[hashAt(target, i, bits)]!;
    if (p < 0) return undefined;
    const n = matchLength(target, i, base, p, limit);
    return n >= Math.max(MIN_COPY, KEY) ? { src: p, len: n } : undefined;
  };
  return (target: Uint8Array, i: number, cursor: number, limit: number, from: number) => {
    const m = forward(target, i, cursor, limit);
    if (!m) return undefined;
    let { src, len } = m;
    let at = i;
    while (at > from && src > 0 && target[at - 1] === base[src - 1]) {
      at--;
      src--;
      len++;
    }
    return { at, src, len };
  };
}

export function encodeDelta(base: Uint8Array, target: Uint8Array): Buffer {
  const match = baseMatcher(base);
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
    const m = match(target, i, cursor, target.byteLength, litStart);
    if (!m) {
      i++;
      continue;
    }
    emitLiterals(m.at);
    varint(m.len * 2 + 1, out);
    varint(zigzag(m.src - cursor), out);
    cursor = m.src + m.len;
    i = m.at + m.len;
    litStart = i;
  }
  emitLiterals(target.byteLength);
  flushOut();
  return Buffer.concat(chunks);
}

/** Reads a delta's varints, and holds the bytes built so far to their cap. */
export class DeltaReader {
  off = 0;
  total = 0;
  readonly parts: Uint8Array[] = [];

  constructor(
    readonly delta: Uint8Array,
    readonly maxBytes: number,
  ) {}

  get done(): boolean {
    return this.off >= this.delta.byteLength;
  }

  read(): number {
    let n = 0;
    let mul = 1;
    for (let k = 0; k < 8; k++) {
      if (this.off >= this.delta.byteLength) throw new DeltaError('delta truncated');
      const b = this.delta[this.off++]!;
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) return n;
      mul *= 0x80;
    }
    throw new DeltaError('delta varint too long');
  }

  /** Room for `len` more bytes under the cap, or a DeltaError. */
  reserve(len: number): void {
    if (this.total + len > this.maxBytes) throw new DeltaError(`delta builds more than ${this.maxBytes} bytes`);
  }

  literal(len: number): void {
    this.reserve(len);
    if (this.off + len > this.delta.byteLength) throw new DeltaError('delta literals truncated');
    this.push(this.delta.subarray(this.off, this.off + len));
    this.off += len;
  }

  push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.total += bytes.byteLength;
  }

  result(): Buffer {
    return Buffer.concat(this.parts, this.total);
  }
}

/** The base bytes a copy op names, or a DeltaError when they are not all in the base. */
export function baseSlice(base: Uint8Array, src: number, len: number): Uint8Array {
  if (src < 0 || src + len > base.byteLength) throw new DeltaError('delta copies outside its base');
  return base.subarray(src, src + len);
}

/** Apply a delta; the result may not exceed `maxBytes` (a hostile delta stops there). */
export function applyDelta(base: Uint8Array, delta: Uint8Array, maxBytes: number): Buffer {
  const r = new DeltaReader(delta, maxBytes);
  let cursor = 0;
  while (!r.done) {
    const op = r.read();
    const len = Math.floor(op / 2);
    if (op % 2 === 0) {
      r.literal(len);
      cursor += len;
    } else {
      r.reserve(len);
      const src = cursor + unzigzag(r.read());
      r.push(baseSlice(base, src, len));
      cursor = src + len;
    }
  }
  return r.result();
}
