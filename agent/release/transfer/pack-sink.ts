import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { errorMessage } from '../../../shared/errors.js';
import type { ChunkStore } from '../../../shared/content/chunk-store.js';
import { expandEntry } from '../../../shared/content/solid.js';
import { PackDecoder } from './pack-decoder.js';
import { packPartPath, removePack, type PackState } from './pack-state.js';

// Over this many bytes of partial data, flush to disk: a cut loses at most this much.
const FLUSH_BYTES = 256 * 1024;

export interface SinkCounters {
  bytesReceived: number;
  chunksStored: number;
  chunksRejected: number;
  /** Raw (unpacked) bytes of the chunks stored: what progress is counted in. */
  bytesStored: number;
  /** Chunks that came (alone or in a group) while already on board: bytes the link carried for nothing. */
  chunksHeld: number;
}

/**
 * A pack landing in <id>.part: bytes appended as they come (flushed every FLUSH_BYTES, so a cut loses at
 * most that), each complete chunk verified and stored at once. Only the unparsed tail stays in memory.
 */
export class PackSink {
  readonly part: string;
  have: number;
  private readonly decoder = new PackDecoder();
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextReport = 0;

  // The sizes of every chunk of the release, for entries beyond the chunks asked (solid groups asked ahead
  // of the content; the indexes of such a pack resumed with the content): looked up when such an entry
  // lands, until they are known.
  private releaseSizes: ReadonlyMap<string, number> | undefined;
  private readonly lookup = { get: (d: string) => this.sizes.get(d) ?? this.releaseSizes?.get(d) };

  /**
   * `release`, when given, names the raw sizes of every chunk of the release once its layer indexes are on
   * board (undefined before): groups of content the hub sent ahead of them are then taken too.
   */
  constructor(
    private readonly deps: { dir: string; chunks: ChunkStore; log: Logger },
    readonly state: PackState,
    private readonly sizes: Map<string, number>,
    private readonly stats: SinkCounters,
    private readonly release?: () => ReadonlyMap<string, number> | undefined,
  ) {
    this.part = packPartPath(deps.dir, state.id);
    // What is on disk was received before a cut: chunks complete in it are stored again (idempotent).
    const onDisk = existsSync(this.part) ? readFileSync(this.part) : Buffer.alloc(0);
    this.have = onDisk.byteLength;
    this.store(onDisk, true);
  }

  /** Take a piece; false when it ran past the pack's length (what a hub sends beyond it is not believed). */
  write(piece: Buffer): boolean {
    const room = this.state.length - (this.have + this.pendingBytes);
    const take = piece.subarray(0, Math.max(0, room));
    this.pending.push(Buffer.from(take));
    this.pendingBytes += take.byteLength;
    this.stats.bytesReceived += piece.byteLength;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    return take.byteLength === piece.byteLength;
  }

  flush(): void {
    if (!this.pendingBytes) return;
    const data = Buffer.concat(this.pending);
    appendFileSync(this.part, data);
    this.have += data.byteLength;
    this.pending = [];
    this.pendingBytes = 0;
    this.store(data);
  }

  finish(): void {
    removePack(this.deps.dir, this.state.id);
  }

  /** Store the chunks these bytes complete; one the store refuses (bad digest) is fetched again later. */
  private store(data: Buffer, replay = false): void {
    const { chunks, log } = this.deps;
    for (const { digest, body } of this.decoder.push(data)) {
      // Outside the try: what sizing the content refuses (a disk too full for it) stops the transfer.
      if (!this.sizes.has(digest) && !this.releaseSizes) this.releaseSizes = this.release?.();
      const raw = this.lookup.get(digest);
      if (raw !== undefined && chunks.has(digest)) {
        if (!replay) this.stats.chunksHeld++;
        continue;
      }
      try {
        if (raw !== undefined) {
          chunks.put(digest, Buffer.from(body), raw);
          this.stats.chunksStored++;
          this.stats.bytesStored += raw;
          continue;
        }
        // A solid group or a delta: each chunk it stands for is checked against its own digest.
        for (const c of expandEntry(digest, body, { sizes: this.lookup, held: (d) => chunks.getRaw(d) })) {
          if (chunks.has(c.digest)) {
            if (!replay) this.stats.chunksHeld++;
            continue;
          }
          chunks.putRaw(c.digest, c.raw);
          this.stats.chunksStored++;
          this.stats.bytesStored += c.raw.byteLength;
        }
      } catch (err) {
        this.stats.chunksRejected++;
        log.warn(
          { chunk: digest.slice(0, 12), reason: errorMessage(err) },
          'chunk failed verification; it will be fetched again',
        );
      }
    }
    this.reportProgress();
  }

  /** Plain progress lines for the log: one per tenth of the pack. */
  private reportProgress(): void {
    if (this.have < this.nextReport) return;
    const { id, length } = this.state;
    const percent = Math.floor((100 * this.have) / Math.max(1, length));
    this.deps.log.info({ pack: id, at: this.have, of: length, percent }, 'downloading release chunks');
    this.nextReport = this.have + Math.max(1, Math.ceil(length / 10));
  }
}
