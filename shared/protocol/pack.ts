import { TenderError } from '../errors.js';

/**
 * The two pack layouts: many compressed chunks in one body, so a transfer is a few large requests rather
 * than one per chunk (a 700 ms round trip per chunk would be fatal). Digests are sha256 of the raw chunk;
 * sizes are big-endian 32-bit. Each layout has one encoder and one decoder here, and its header size once.
 *
 * - upload (publisher -> hub, MEDIA.uploadPack): [32-byte digest][4-byte raw size][4-byte compressed size]
 *   [compressed bytes]. The raw size lets the hub check each chunk inflates to what it claims.
 * - download (hub -> vessel, MEDIA.pack): [32-byte digest][4-byte compressed size][compressed bytes]. The
 *   vessel knows raw sizes from the signed manifest and its layer indexes, so they do not travel. A pack's
 *   bytes are stable, so a cut download resumes at any byte with a Range request.
 */
export class PackFormatError extends TenderError {}

export const UPLOAD_ENTRY_HEADER_BYTES = 40;
export const DOWNLOAD_ENTRY_HEADER_BYTES = 36;

export interface UploadEntry {
  digest: string;
  rawSize: number;
  compressed: Buffer;
}

export interface DownloadEntry {
  digest: string;
  compressed: Buffer;
}

export function encodeUploadPack(entries: UploadEntry[]): Buffer {
  return Buffer.concat(
    entries.flatMap((e) => {
      const h = Buffer.alloc(UPLOAD_ENTRY_HEADER_BYTES);
      Buffer.from(e.digest, 'hex').copy(h, 0);
      h.writeUInt32BE(e.rawSize, 32);
      h.writeUInt32BE(e.compressed.byteLength, 36);
      return [h, e.compressed];
    }),
  );
}

/** Parsed strictly: a truncated entry or trailing bytes is an error naming the offset. */
export function decodeUploadPack(buf: Buffer): UploadEntry[] {
  const out: UploadEntry[] = [];
  let off = 0;
  while (off < buf.byteLength) {
    if (buf.byteLength - off < UPLOAD_ENTRY_HEADER_BYTES)
      throw new PackFormatError(`pack entry header truncated at byte ${off}`);
    const digest = buf.subarray(off, off + 32).toString('hex');
    const rawSize = buf.readUInt32BE(off + 32);
    const compSize = buf.readUInt32BE(off + 36);
    const start = off + UPLOAD_ENTRY_HEADER_BYTES;
    if (start + compSize > buf.byteLength)
      throw new PackFormatError(`pack entry ${digest.slice(0, 12)} runs past the end at byte ${off}`);
    out.push({ digest, rawSize, compressed: buf.subarray(start, start + compSize) });
    off = start + compSize;
  }
  return out;
}

/** Bytes one entry of a download pack takes for a chunk of `compressedSize` bytes. */
export function downloadEntryBytes(compressedSize: number): number {
  return DOWNLOAD_ENTRY_HEADER_BYTES + compressedSize;
}

/** One entry of a download pack: its header, then the compressed chunk. */
export function encodeDownloadEntry(digest: string, compressed: Buffer): Buffer {
  const h = Buffer.alloc(DOWNLOAD_ENTRY_HEADER_BYTES);
  Buffer.from(digest, 'hex').copy(h, 0);
  h.writeUInt32BE(compressed.byteLength, 32);
  return Buffer.concat([h, compressed]);
}

/**
 * The complete entries at the start of `buf` (a pack arriving piece by piece) and how many bytes they
 * took; what follows is an entry still arriving, to be decoded again with the next piece.
 */
export function decodeDownloadEntries(buf: Buffer): { entries: DownloadEntry[]; consumed: number } {
  const entries: DownloadEntry[] = [];
  let off = 0;
  while (buf.byteLength - off >= DOWNLOAD_ENTRY_HEADER_BYTES) {
    const len = buf.readUInt32BE(off + 32);
    const start = off + DOWNLOAD_ENTRY_HEADER_BYTES;
    if (buf.byteLength - start < len) break;
    entries.push({ digest: buf.subarray(off, off + 32).toString('hex'), compressed: buf.subarray(start, start + len) });
    off = start + len;
  }
  return { entries, consumed: off };
}
