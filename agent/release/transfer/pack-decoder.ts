import { decodeDownloadEntries, DOWNLOAD_ENTRY_HEADER_BYTES } from '../../../shared/protocol/pack.js';

/*
 * The download pack as it arrives: its layout and codec are shared/protocol's (pack.ts); here, what the
 * vessel believes of a pack's length and the decoder that keeps only a partial entry in memory.
 */

// Brotli never grows data by more than a few bytes per 64 KB block (it falls back to stored blocks).
const BROTLI_WORST_CASE = (raw: number) => raw + 16 + Math.ceil(raw / 65536) * 8;

/**
 * The longest a pack of these chunks can be: their signed raw sizes plus brotli's worst-case overhead and
 * the entry headers. A hub that declares more is not believed.
 */
export function maxPackLength(digests: string[], rawSizes: Map<string, number>): number {
  return digests.reduce((a, d) => a + DOWNLOAD_ENTRY_HEADER_BYTES + BROTLI_WORST_CASE(rawSizes.get(d) ?? 0), 0);
}

export interface PackEntry {
  digest: string;
  /** The compressed chunk; valid until the next push. */
  body: Buffer;
}

/** Decodes a pack as its bytes arrive: only the unparsed tail (at most a partial entry) stays in memory. */
export class PackDecoder {
  private tail = Buffer.alloc(0);

  /** The entries these bytes complete; a partial entry waits for the rest. */
  push(data: Buffer): PackEntry[] {
    const tail = this.tail.byteLength ? Buffer.concat([this.tail, data]) : data;
    const { entries, consumed } = decodeDownloadEntries(tail);
    // A copy: the rest of a large buffer is not kept alive by its last few bytes.
    this.tail = Buffer.from(tail.subarray(consumed));
    return entries.map((e) => ({ digest: e.digest, body: e.compressed }));
  }
}
