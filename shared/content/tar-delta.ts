import { baseMatcher, baseSlice, DeltaError, DeltaReader, unzigzag, varint, zigzag } from './delta.js';
import { decodeLayerIndex } from './layer-index.js';
import { TarWalker } from './tar-split.js';

/**
 * Delta format 2 (blob magic TNDRDL02, solid.ts): format 1's literals and copies, plus one op for a tar
 * header that equals a header of the base but for its mtime. A rebuilt image gives every file a new mtime,
 * and with it a new checksum; format 1 paid for both in every header, and its copies lost their way in the
 * zeros around them. Here such a header costs an op naming the base header (relative to the cursor, so 0
 * when the entries come in the same order) and the mtime (relative to the last one, so 0 when they share
 * it), and the checksum is recomputed on board.
 *
 * Ops, as varints, the kind in the low two bits:
 *   0  (len << 2)               `len` literal bytes follow
 *   1  (len << 2 | 1), z        copy `len` bytes from the base at cursor + unzigzag(z)
 *   2  (zigzag(rel) << 2 | 2), z  a 512-byte header: the base's at cursor + rel, its mtime field set to the
 *                               last mtime + unzigzag(z) in the base field's layout, its checksum recomputed
 *   3  reserved: refused, so a newer encoder's op is never read as something else.
 * After each op the cursor is where the base would continue: past the copy or the header, or on by the
 * literals.
 */
const HEADER = 512;
const MTIME = [136, 148] as const;
const CHKSUM = [148, 156] as const;

export interface HeaderHints {
  /** Offsets of the tar header blocks in the base and in the target. */
  base: number[];
  target: number[];
}

/**
 * The offsets of the tar header blocks inside a layer index blob (layer-index.ts); none when it does not
 * parse as one (a delta is then made of literals and copies alone).
 */
export function indexHeaderOffsets(blob: Buffer): number[] {
  try {
    const { meta } = decodeLayerIndex(blob);
    const start = meta.byteOffset - blob.byteOffset;
    const walker = new TarWalker();
    const out: number[] = [];
    let off = 0;
    while (!walker.ended && off + HEADER <= meta.byteLength) {
      const step = walker.header(meta.subarray(off, off + HEADER));
      if (!step.end) out.push(start + off);
      off += HEADER;
      if (!step.content && step.data > 0) {
        walker.extData(meta.subarray(off, off + step.data));
        off += step.data;
      }
      off += step.pad;
    }
    return out;
  } catch {
    return [];
  }
}

/** The leading octal digits of a header field, and the value `n` written in the same layout. */
function writeOctal(field: Uint8Array, n: number): Buffer | undefined {
  let digits = 0;
  while (digits < field.byteLength && field[digits]! >= 0x30 && field[digits]! <= 0x37) digits++;
  const s = n.toString(8);
  if (digits === 0 || s.length > digits || n < 0) return undefined;
  return Buffer.concat([Buffer.from(s.padStart(digits, '0'), 'latin1'), field.subarray(digits)]);
}

/** A base header with another mtime and its checksum recomputed; undefined when its fields do not allow it. */
function rebuildHeader(baseHeader: Uint8Array, mtime: number): Buffer | undefined {
  const h = Buffer.from(baseHeader);
  const m = writeOctal(h.subarray(...MTIME), mtime);
  if (!m) return undefined;
  m.copy(h, MTIME[0]);
  const sum = h.reduce((a, b, i) => a + (i >= CHKSUM[0] && i < CHKSUM[1] ? 0x20 : b), 0);
  const c = writeOctal(h.subarray(...CHKSUM), sum);
  if (!c) return undefined;
  c.copy(h, CHKSUM[0]);
  return h;
}

function readMtime(header: Uint8Array): number | undefined {
  const f = Buffer.from(header.subarray(...MTIME)).toString('latin1');
  const digits = /^[0-7]+/.exec(f)?.[0];
  return digits ? parseInt(digits, 8) : undefined;
}

/** A header's bytes but for its mtime and checksum: what a rebuilt header shares with its base. */
const headerKey = (h: Uint8Array) =>
  Buffer.concat([h.subarray(0, MTIME[0]), h.subarray(CHKSUM[1], HEADER)]).toString('latin1');

export function encodeTarDelta(base: Buffer, target: Buffer, hints: HeaderHints): Buffer {
  const match = baseMatcher(base);
  const baseHeaders = new Map<string, number>();
  for (const p of hints.base) {
    if (p + HEADER > base.byteLength) continue;
    const k = headerKey(base.subarray(p, p + HEADER));
    if (!baseHeaders.has(k)) baseHeaders.set(k, p);
  }
  const targetHeaders = hints.target.filter((p) => p + HEADER <= target.byteLength).sort((a, b) => a - b);
  const out: number[] = [];
  const chunks: Buffer[] = [];
  const flushOut = () => {
    if (out.length) chunks.push(Buffer.from(out));
    out.length = 0;
  };
  let cursor = 0;
  let mtime = 0;
  let litStart = 0;
  let i = 0;
  let next = 0; // index into targetHeaders of the first header at or after i
  const emitLiterals = (end: number) => {
    const n = end - litStart;
    if (n <= 0) return;
    varint(n * 4, out);
    flushOut();
    chunks.push(Buffer.from(target.subarray(litStart, end)));
    cursor += n;
  };
  while (i < target.byteLength) {
    while (next < targetHeaders.length && targetHeaders[next]! < i) next++;
    const atHeader = targetHeaders[next] === i;
    // A copy runs up to the next header at most, so that header gets its own op.
    const limit = targetHeaders[atHeader ? next + 1 : next] ?? target.byteLength;
    if (atHeader) {
      const h = target.subarray(i, i + HEADER);
      const src = baseHeaders.get(headerKey(h));
      const same =
        cursor >= 0 && cursor + HEADER <= base.byteLength && h.equals(base.subarray(cursor, cursor + HEADER));
      const t = readMtime(h);
      if (
        src !== undefined &&
        !same &&
        t !== undefined &&
        rebuildHeader(base.subarray(src, src + HEADER), t)?.equals(h)
      ) {
        emitLiterals(i);
        varint(zigzag(src - cursor) * 4 + 2, out);
        varint(zigzag(t - mtime), out);
        mtime = t;
        cursor = src + HEADER;
        i += HEADER;
        litStart = i;
        continue;
      }
    }
    const m = match(target, i, cursor, limit, litStart);
    if (!m) {
      i++;
      continue;
    }
    emitLiterals(m.at);
    varint(m.len * 4 + 1, out);
    varint(zigzag(m.src - cursor), out);
    cursor = m.src + m.len;
    i = m.at + m.len;
    litStart = i;
  }
  emitLiterals(target.byteLength);
  flushOut();
  return Buffer.concat(chunks);
}

/** Apply a format-2 delta; the result may not exceed `maxBytes` (a hostile delta stops there). */
export function applyTarDelta(base: Uint8Array, delta: Uint8Array, maxBytes: number): Buffer {
  const r = new DeltaReader(delta, maxBytes);
  let cursor = 0;
  let mtime = 0;
  while (!r.done) {
    const op = r.read();
    const kind = op % 4;
    const arg = Math.floor(op / 4);
    if (kind === 0) {
      r.literal(arg);
      cursor += arg;
    } else if (kind === 1) {
      r.reserve(arg);
      const src = cursor + unzigzag(r.read());
      r.push(baseSlice(base, src, arg));
      cursor = src + arg;
    } else if (kind === 2) {
      r.reserve(HEADER);
      const src = cursor + unzigzag(arg);
      mtime += unzigzag(r.read());
      if (!Number.isSafeInteger(mtime)) throw new DeltaError('delta header op: mtime out of range');
      const h = rebuildHeader(baseSlice(base, src, HEADER), mtime);
      if (!h) throw new DeltaError(`delta header op: base bytes at ${src} have no octal mtime and checksum fields`);
      r.push(h);
      cursor = src + HEADER;
    } else throw new DeltaError(`delta op kind ${kind} is not known to this agent (format 2 has kinds 0-2)`);
  }
  return r.result();
}
