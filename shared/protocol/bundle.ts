import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import { TenderError } from '../errors.js';
import { MAX_CHUNK_RAW_BYTES } from '../content/chunk-store.js';
import { MAX_MANIFEST_BYTES } from './manifest.js';
import { appNameSchema, releaseVersionSchema, vesselNameSchema } from './names.js';
import { decodeDownloadEntries, encodeDownloadEntry } from './pack.js';

/*
 * A release bundle: what a USB stick carries aboard (`tender bundle export` ashore, `tender bundle import`
 * on board). One file, written and read as a stream, in frames of [1-byte type][4-byte big-endian length]
 * [payload], after an 8-byte magic:
 *
 *   H  header: JSON (app, version, sequence, for whom); informational, never trusted
 *   M  the signed release manifest, exact envelope bytes (the one thing that is trusted, by its signatures)
 *   C  one chunk: a download-pack entry (pack.ts: [digest][compressed size][compressed bytes])
 *   E  end: [4-byte chunk count][sha256 of every byte before this frame]
 *
 * In that order, configs and layer indexes before content chunks (a reader learns content sizes from the
 * indexes). Nothing may follow E: a file without it is truncated, a count or hash that differs is altered.
 * Chunks are checked against their digests by the reader, and the manifest against the trusted root:
 * a bundle is trusted no more than a download from the hub.
 */
export class BundleFormatError extends TenderError {}

export const BUNDLE_MAGIC = Buffer.from('TNDRBDL1');
const FRAME_HEADER_BYTES = 5;
const END_PAYLOAD_BYTES = 4 + 32;
// The header is a few names and numbers.
const MAX_HEADER_BYTES = 4096;
// A chunk frame: a pack entry of a chunk at its largest raw size plus brotli's worst-case growth.
const MAX_CHUNK_FRAME_BYTES = 36 + MAX_CHUNK_RAW_BYTES + Math.ceil(MAX_CHUNK_RAW_BYTES / 65536) * 8 + 16;

export const FRAME = { header: 0x48, manifest: 0x4d, chunk: 0x43, end: 0x45 } as const;

export const bundleHeaderSchema = z.strictObject({
  format: z.literal(1),
  app: appNameSchema,
  version: releaseVersionSchema,
  sequence: z.number().int().min(1),
  /** The vessel whose holdings (as the hub knew them) were left out; null: every chunk is in. */
  for: vesselNameSchema.nullable(),
  createdAt: z.string().max(40),
});
export type BundleHeader = z.infer<typeof bundleHeaderSchema>;

function frame(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt8(type, 0);
  h.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([h, payload]);
}

/** Writes a bundle piece by piece; each call returns the bytes to append, and the hash runs over them all. */
export class BundleEncoder {
  private readonly hash: Hash = createHash('sha256');
  private chunks = 0;

  private out(b: Buffer): Buffer {
    this.hash.update(b);
    return b;
  }

  start(header: BundleHeader, manifest: Buffer): Buffer {
    return this.out(
      Buffer.concat([
        BUNDLE_MAGIC,
        frame(FRAME.header, Buffer.from(JSON.stringify(bundleHeaderSchema.parse(header)))),
        frame(FRAME.manifest, manifest),
      ]),
    );
  }

  chunk(digest: string, compressed: Buffer): Buffer {
    this.chunks++;
    return this.out(frame(FRAME.chunk, encodeDownloadEntry(digest, compressed)));
  }

  end(): Buffer {
    const p = Buffer.alloc(END_PAYLOAD_BYTES);
    p.writeUInt32BE(this.chunks, 0);
    this.hash.copy().digest().copy(p, 4);
    return frame(FRAME.end, p);
  }
}

export type BundleFrame =
  | { type: 'header'; header: BundleHeader }
  | { type: 'manifest'; bytes: Buffer }
  | { type: 'chunk'; digest: string; compressed: Buffer };

/**
 * Reads a bundle as its bytes arrive, strictly: the magic, then frames in order under their size caps;
 * only a partial frame stays in memory. `finish()` says whether the end frame came and matched.
 */
export class BundleDecoder {
  private tail = Buffer.alloc(0);
  private offset = 0;
  private readonly hash: Hash = createHash('sha256');
  private stage: 'magic' | 'header' | 'manifest' | 'chunks' | 'done' = 'magic';
  private chunks = 0;

  push(data: Buffer): BundleFrame[] {
    let buf = this.tail.byteLength ? Buffer.concat([this.tail, data]) : data;
    const out: BundleFrame[] = [];
    for (;;) {
      if (this.stage === 'done') {
        if (buf.byteLength) throw new BundleFormatError(`bytes after the end of the bundle at byte ${this.offset}`);
        break;
      }
      if (this.stage === 'magic') {
        if (buf.byteLength < BUNDLE_MAGIC.byteLength) break;
        if (!buf.subarray(0, BUNDLE_MAGIC.byteLength).equals(BUNDLE_MAGIC))
          throw new BundleFormatError('not a Tender bundle (its first bytes are not the bundle magic)');
        buf = this.consume(buf, BUNDLE_MAGIC.byteLength);
        this.stage = 'header';
        continue;
      }
      if (buf.byteLength < FRAME_HEADER_BYTES) break;
      const type = buf.readUInt8(0);
      const len = buf.readUInt32BE(1);
      this.checkFrame(type, len);
      if (buf.byteLength < FRAME_HEADER_BYTES + len) break;
      const payload = buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len);
      if (type === FRAME.end) {
        const count = payload.readUInt32BE(0);
        const expected = this.hash.copy().digest();
        if (count !== this.chunks || !payload.subarray(4).equals(expected))
          throw new BundleFormatError(
            `bundle altered: its end says ${count} chunks and a hash the ${this.chunks} chunks read do not match`,
          );
        buf = buf.subarray(FRAME_HEADER_BYTES + len);
        this.offset += FRAME_HEADER_BYTES + len;
        this.stage = 'done';
        continue;
      }
      out.push(this.decodeFrame(type, Buffer.from(payload)));
      buf = this.consume(buf, FRAME_HEADER_BYTES + len);
    }
    this.tail = Buffer.from(buf);
    return out;
  }

  /** Throws unless the whole bundle, end frame included, was read. */
  finish(): void {
    if (this.stage !== 'done')
      throw new BundleFormatError(`bundle truncated at byte ${this.offset + this.tail.byteLength} (no end frame)`);
  }

  private consume(buf: Buffer, n: number): Buffer {
    this.hash.update(buf.subarray(0, n));
    this.offset += n;
    return buf.subarray(n);
  }

  private checkFrame(type: number, len: number): void {
    const at = `at byte ${this.offset}`;
    const want = { header: FRAME.header, manifest: FRAME.manifest, chunks: undefined }[this.stage as string];
    if (want !== undefined && type !== want)
      throw new BundleFormatError(`bundle frame ${type} ${at} where the ${this.stage} belongs`);
    if (this.stage === 'chunks' && type !== FRAME.chunk && type !== FRAME.end)
      throw new BundleFormatError(`unknown bundle frame ${type} ${at}`);
    const cap =
      type === FRAME.header
        ? MAX_HEADER_BYTES
        : type === FRAME.manifest
          ? MAX_MANIFEST_BYTES
          : type === FRAME.end
            ? END_PAYLOAD_BYTES
            : MAX_CHUNK_FRAME_BYTES;
    if (len > cap) throw new BundleFormatError(`bundle frame ${at} is ${len} bytes, over its cap of ${cap}`);
    if (type === FRAME.end && len !== END_PAYLOAD_BYTES)
      throw new BundleFormatError(`bundle end frame ${at} malformed`);
  }

  private decodeFrame(type: number, payload: Buffer): BundleFrame {
    if (type === FRAME.header) {
      this.stage = 'manifest';
      let json: unknown;
      try {
        json = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new BundleFormatError('bundle header is not JSON');
      }
      const r = bundleHeaderSchema.safeParse(json);
      if (!r.success) throw new BundleFormatError(`bundle header invalid: ${r.error.issues[0]?.message ?? ''}`);
      return { type: 'header', header: r.data };
    }
    if (type === FRAME.manifest) {
      this.stage = 'chunks';
      return { type: 'manifest', bytes: payload };
    }
    const { entries, consumed } = decodeDownloadEntries(payload);
    if (entries.length !== 1 || consumed !== payload.byteLength)
      throw new BundleFormatError(`bundle chunk frame at byte ${this.offset} malformed`);
    this.chunks++;
    return { type: 'chunk', digest: entries[0]!.digest, compressed: entries[0]!.compressed };
  }
}
