/*
 * The download pack as the hub sends it: entries back to back, each a 32-byte sha256 digest, a 4-byte
 * big-endian length, and that many bytes of the compressed chunk. Kept here until the pack codec has its
 * home in shared/protocol.
 */

export const PACK_ENTRY_HEADER = 36;

// Brotli never grows data by more than a few bytes per 64 KB block (it falls back to stored blocks).
const BROTLI_WORST_CASE = (raw: number) => raw + 16 + Math.ceil(raw / 65536) * 8;

/**
 * The longest a pack of these chunks can be: their signed raw sizes plus brotli's worst-case overhead and
 * the entry headers. A hub that declares more is not believed.
 */
export function maxPackLength(digests: string[], rawSizes: Map<string, number>): number {
  return digests.reduce((a, d) => a + PACK_ENTRY_HEADER + BROTLI_WORST_CASE(rawSizes.get(d) ?? 0), 0);
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
    const entries: PackEntry[] = [];
    let parsed = 0;
    while (tail.byteLength - parsed >= PACK_ENTRY_HEADER) {
      const len = tail.readUInt32BE(parsed + 32);
      if (tail.byteLength - parsed - PACK_ENTRY_HEADER < len) break;
      entries.push({
        digest: tail.subarray(parsed, parsed + 32).toString('hex'),
        body: tail.subarray(parsed + PACK_ENTRY_HEADER, parsed + PACK_ENTRY_HEADER + len),
      });
      parsed += PACK_ENTRY_HEADER + len;
    }
    // A copy: the rest of a large buffer is not kept alive by its last few bytes.
    this.tail = Buffer.from(tail.subarray(parsed));
    return entries;
  }
}
