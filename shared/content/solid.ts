import { createHash } from 'node:crypto';
import { brotliCompress, brotliDecompressSync, constants } from 'node:zlib';
import { promisify } from 'node:util';
import { ChunkError } from './chunk-store.js';
import { applyDelta, DeltaError, encodeDelta } from './delta.js';
import { applyTarDelta, encodeTarDelta, indexHeaderOffsets } from './tar-delta.js';

/**
 * Pack entries that carry more than one chunk's worth of compression. Both are blobs like any chunk:
 * named by the sha256 of their raw bytes, stored brotli-compressed in the hub's chunk store (so a pack
 * that lists one has stable bytes across retries and hub restarts), and unpacked by the vessel into the
 * chunks they stand for, each checked against its own signed digest.
 *
 * - solid group, raw "TNDRSG01" [u32 count] count x ([32-byte digest][u32 raw size]) then the members'
 *   raw bytes one after the other, compressed as one stream: the redundancy across chunks (libraries
 *   sharing code, a CA bundle repeating the certificate files) is no longer lost at every chunk boundary.
 * - delta, raw "TNDRDL0n" [32-byte base digest][32-byte target digest] then delta ops: a chunk (a changed
 *   layer's index) as a delta against one the vessel says it holds. n is the ops' format: 1 literals and
 *   copies (delta.ts), 2 those and tar headers rebuilt with a new mtime (tar-delta.ts). A vessel names the
 *   formats it applies when it asks for a pack (HEADER.deltaFormats); one that names none gets format 1,
 *   and an agent that meets a format it does not know refuses the entry by name.
 */
const SOLID_MAGIC = Buffer.from('TNDRSG01', 'latin1');
const DELTA_PREFIX = Buffer.from('TNDRDL', 'latin1');
const deltaMagic = (format: DeltaFormat) => Buffer.from(`TNDRDL0${format}`, 'latin1');

/** The delta formats this code makes and applies, oldest first. */
export const DELTA_FORMATS = [1, 2] as const;
export type DeltaFormat = (typeof DELTA_FORMATS)[number];
const APPLY: Record<DeltaFormat, (base: Uint8Array, ops: Uint8Array, maxBytes: number) => Buffer> = {
  1: applyDelta,
  2: applyTarDelta,
};

/** The newest format both sides know, from the list a vessel sent ("1,2"); format 1 when it sent none. */
export function deltaFormatFor(accepted: string | undefined): DeltaFormat {
  const theirs = new Set((accepted ?? '').split(',').map((s) => s.trim()));
  return [...DELTA_FORMATS].reverse().find((f) => theirs.has(String(f))) ?? 1;
}

/** Raw bytes of members per solid group: a few MB, so one group is a modest unit to hold and to redo. */
export const SOLID_GROUP_BYTES = 8 * 1024 * 1024;
/** The most a solid or delta blob may inflate to on a vessel (a bomb stops there). */
export const SPECIAL_MAX_RAW_BYTES = 2 * SOLID_GROUP_BYTES + 64 * 1024 * 1024;

const brotliCompressAsync = promisify(brotliCompress);

/** Brotli for data compressed once and sent to many: quality 11 by default, a 16 MB window. */
export function compressBlob(raw: Buffer, quality = 11): Promise<Buffer> {
  return brotliCompressAsync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: quality,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength,
    },
  });
}

/**
 * The chunks (digest, raw size, in layer order) a release adds over a holding, in groups of about
 * SOLID_GROUP_BYTES; a lone chunk is left to a per-chunk entry.
 */
export function groupChunks(level: Iterable<[string, number]>): [string, number][][] {
  const out: [string, number][][] = [];
  let group: [string, number][] = [];
  let bytes = 0;
  for (const c of level) {
    group.push(c);
    bytes += c[1];
    if (bytes >= SOLID_GROUP_BYTES) {
      out.push(group);
      group = [];
      bytes = 0;
    }
  }
  if (group.length) out.push(group);
  return out.filter((g) => g.length > 1);
}

export const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function encodeSolidRaw(members: { digest: string; raw: Buffer }[]): Buffer {
  const head = Buffer.alloc(SOLID_MAGIC.byteLength + 4 + members.length * 36);
  SOLID_MAGIC.copy(head, 0);
  head.writeUInt32BE(members.length, 8);
  members.forEach((m, i) => {
    Buffer.from(m.digest, 'hex').copy(head, 12 + i * 36);
    head.writeUInt32BE(m.raw.byteLength, 12 + i * 36 + 32);
  });
  return Buffer.concat([head, ...members.map((m) => m.raw)]);
}

export function encodeDeltaRaw(base: string, target: string, ops: Buffer, format: DeltaFormat = 1): Buffer {
  return Buffer.concat([deltaMagic(format), Buffer.from(base, 'hex'), Buffer.from(target, 'hex'), ops]);
}

/** The raw delta blob that builds layer index `target` from `base`, in `format`. */
export function encodeIndexDeltaRaw(base: Buffer, target: Buffer, format: DeltaFormat): Buffer {
  const ops =
    format === 1
      ? encodeDelta(base, target)
      : encodeTarDelta(base, target, { base: indexHeaderOffsets(base), target: indexHeaderOffsets(target) });
  return encodeDeltaRaw(sha256hex(base), sha256hex(target), ops, format);
}

export interface ExpandContext {
  /** Raw sizes of the chunks the vessel wants (from signed data): a member outside it is refused. */
  sizes: Pick<ReadonlyMap<string, number>, 'get'>;
  /** The raw bytes of a chunk on board, verified; undefined when not held. */
  held: (digest: string) => Buffer | undefined;
}

/**
 * The chunks a solid or delta entry stands for, each verified against its digest and signed size. The
 * entry's own digest is checked too, and its inflation capped; anything else is a ChunkError.
 */
export function expandEntry(digest: string, compressed: Buffer, ctx: ExpandContext): { digest: string; raw: Buffer }[] {
  const short = digest.slice(0, 12);
  let raw: Buffer;
  try {
    raw = brotliDecompressSync(compressed, { maxOutputLength: SPECIAL_MAX_RAW_BYTES });
  } catch (err) {
    throw new ChunkError(`pack entry ${short}: does not inflate (${(err as Error).message})`);
  }
  if (sha256hex(raw) !== digest) throw new ChunkError(`pack entry ${short}: content does not match its digest`);
  const magic = raw.subarray(0, 8);
  const out: { digest: string; raw: Buffer }[] = [];
  const accept = (d: string, bytes: Buffer) => {
    const want = ctx.sizes.get(d);
    if (want === undefined) throw new ChunkError(`pack entry ${short}: carries chunk ${d.slice(0, 12)}, not asked for`);
    if (bytes.byteLength !== want)
      throw new ChunkError(`pack entry ${short}: chunk ${d.slice(0, 12)} is ${bytes.byteLength} bytes, signed ${want}`);
    if (sha256hex(bytes) !== d) throw new ChunkError(`chunk ${d.slice(0, 12)}: content does not match its digest`);
    out.push({ digest: d, raw: bytes });
  };
  if (magic.equals(SOLID_MAGIC)) {
    if (raw.byteLength < 12) throw new ChunkError(`solid group ${short}: truncated`);
    const n = raw.readUInt32BE(8);
    let off = 12 + n * 36;
    if (off > raw.byteLength) throw new ChunkError(`solid group ${short}: ${n} members cannot fit`);
    for (let i = 0; i < n; i++) {
      const h = 12 + i * 36;
      const d = raw.subarray(h, h + 32).toString('hex');
      const len = raw.readUInt32BE(h + 32);
      if (off + len > raw.byteLength) throw new ChunkError(`solid group ${short}: member ${i} runs past the end`);
      accept(d, raw.subarray(off, off + len));
      off += len;
    }
    if (off !== raw.byteLength) throw new ChunkError(`solid group ${short}: trailing bytes`);
    return out;
  }
  if (magic.subarray(0, 6).equals(DELTA_PREFIX)) {
    const format = DELTA_FORMATS.find((f) => magic.equals(deltaMagic(f)));
    if (!format)
      throw new ChunkError(
        `delta ${short}: format ${magic.subarray(6).toString('latin1')} is not one this agent applies ` +
          `(${DELTA_FORMATS.join(', ')})`,
      );
    if (raw.byteLength < 72) throw new ChunkError(`delta ${short}: truncated`);
    const base = raw.subarray(8, 40).toString('hex');
    const target = raw.subarray(40, 72).toString('hex');
    const want = ctx.sizes.get(target);
    if (want === undefined) throw new ChunkError(`delta ${short}: builds chunk ${target.slice(0, 12)}, not asked for`);
    const b = ctx.held(base);
    if (!b) throw new ChunkError(`delta ${short}: base ${base.slice(0, 12)} is not on board`);
    let built: Buffer;
    try {
      built = APPLY[format](b, raw.subarray(72), want);
    } catch (err) {
      if (err instanceof DeltaError) throw new ChunkError(`delta ${short}: ${err.message}`);
      throw err;
    }
    accept(target, built);
    return out;
  }
  throw new ChunkError(`pack entry ${short}: neither a chunk asked for nor a solid group or delta`);
}
