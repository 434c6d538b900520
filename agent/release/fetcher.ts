import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { PACK_MEDIA_TYPE, type ChunkStore } from '../../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { contentChunks, namedChunks } from '../../shared/content/release-chunks.js';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { describeFetchError, expectOk, HubUnreachableError, type HubClient } from '../hub-client.js';

export class FetchError extends TenderError {}
/** The hub refused to make a pack (a 4xx/5xx, not a cut): not retried in this attempt. */
export class FetchRefused extends TenderError {}
export class DiskGuardError extends TenderError {}
/** Not an error: the policy says not now (download window, metered link). */
export class TransferDeferred extends TenderError {}

// A few large packs per release: each costs one round trip to create and one to start downloading.
// Counted in raw bytes (the compressed size of content chunks is the hub's to know): ~40 MB on the wire.
const PACK_MAX_BYTES = 128 * 1024 * 1024;
// A connection that delivers nothing for this long is dead even if TCP has not noticed (a black hole);
// the agent's stallSeconds overrides it.
const STALL_MS = 60_000;
// Less than this per second of a stall window (1 KB/s) aborts the request; the slowest satellite link
// does 25 KB/s.
const MIN_BYTES_PER_STALL_SECOND = 1024;
// Over this many bytes of partial data, flush to disk: a cut loses at most this much.
const FLUSH_BYTES = 256 * 1024;
// Free space kept beyond what a release needs, so a download never fills the disk for the apps.
export const DISK_MARGIN_BYTES = 512 * 1024 * 1024;
const ENTRY_HEADER = 36;
// Brotli never grows data by more than a few bytes per 64 KB block (it falls back to stored blocks).
const BROTLI_WORST_CASE = (raw: number) => raw + 16 + Math.ceil(raw / 65536) * 8;
// The bandwidth cap is promised over any 10 s.
const CAP_WINDOW_MS = 10_000;
// Under a cap, no range request smaller than this (a request costs a round trip of headers).
const MIN_GRANT_BYTES = 16 * 1024;

const packStateSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{32}$/),
  length: z.number().int().min(0),
  etag: z.string(),
  release: z.string(),
  digests: z.array(z.string()),
});
type PackState = z.infer<typeof packStateSchema>;

export interface FetchDeps {
  client: HubClient;
  vesselName: string;
  chunks: ChunkStore;
  dir: string;
  log: Logger;
  signal?: AbortSignal;
  /** Bytes per second for release transfers; 0 = no cap. */
  bytesPerSecond?: number;
  /** Free space to keep beyond what a release needs. */
  diskMarginBytes?: number;
  /** The stall watchdog: no byte for `ms`, or fewer than `minBytes` (default 1 KB a second) in any `ms`. */
  stall?: { ms: number; minBytes?: number };
}

export interface FetchStats {
  requests: number;
  bytesReceived: number;
  chunksStored: number;
  chunksRejected: number;
}

/** Refuse to start a transfer that would leave less than the margin free. */
export function checkDisk(
  dir: string,
  m: ReleaseManifest,
  downloadBytes: number,
  marginBytes = DISK_MARGIN_BYTES,
): void {
  const layerBytes = Object.values(m.images).reduce((a, i) => a + i.layers.reduce((b, l) => b + l.size, 0), 0);
  const need = downloadBytes + layerBytes + marginBytes;
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < need) {
    throw new DiskGuardError(
      `not enough disk for release ${m.version}: needs ${(need / 1e6).toFixed(0)} MB (download, images and a ${(marginBytes / 1e6).toFixed(0)} MB margin), ${(free / 1e6).toFixed(0)} MB free`,
    );
  }
}

/**
 * Fetch what the vessel lacks of a release, in two tiers: first the configs and layer indexes the signed
 * manifest names (one pack), then the content chunks those indexes list and the local store lacks
 * (chunks of every release kept on board count). Packs resume at the byte where a cut stopped them, across
 * restarts (offset and validator live on disk); every chunk is verified against its digest as it lands,
 * and a bad one is dropped and fetched again in a later round.
 */
export async function fetchRelease(
  deps: FetchDeps,
  m: ReleaseManifest,
  stats: FetchStats = { requests: 0, bytesReceived: 0, chunksStored: 0, chunksRejected: 0 },
): Promise<FetchStats> {
  mkdirSync(deps.dir, { recursive: true });
  const named = new Map([...namedChunks(m)].map(([d, s]) => [d, s.raw]));
  const margin = deps.diskMarginBytes ?? DISK_MARGIN_BYTES;
  // Before a byte moves: the indexes plus the images they unpack to must fit with the margin.
  checkDisk(
    deps.dir,
    m,
    [...named].reduce((a, [d, s]) => a + (deps.chunks.has(d) ? 0 : s), 0),
    margin,
  );
  const pacer = new Pacer(deps.bytesPerSecond ?? 0);
  await fetchTier(deps, m, named, stats, pacer);
  let content = contentChunks(m, deps.chunks);
  // An index found damaged on disk was dropped: fetch it again, once.
  if (content.missingIndexes.length) {
    await fetchTier(deps, m, named, stats, pacer);
    content = contentChunks(m, deps.chunks);
  }
  if (content.missingIndexes.length)
    throw new FetchError(
      `release ${m.version}: layer index ${content.missingIndexes[0]!.slice(0, 12)} not on board after fetching`,
    );
  // The link waits while this runs: the store is asked once, and the answer serves both the disk check
  // and the first round of the tier.
  const missing = deps.chunks.missing(content.chunks.keys());
  // Raw sizes bound the compressed download from above: a conservative check, never an optimistic one.
  checkDisk(
    deps.dir,
    m,
    missing.reduce((a, d) => a + content.chunks.get(d)!, 0),
    margin,
  );
  await fetchTier(deps, m, content.chunks, stats, pacer, missing);
  return stats;
}

async function fetchTier(
  deps: FetchDeps,
  m: ReleaseManifest,
  needed: Map<string, number>,
  stats: FetchStats,
  pacer: Pacer,
  knownMissing?: string[],
): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const missing = round === 0 && knownMissing ? knownMissing : deps.chunks.missing(needed.keys());
    if (missing.length === 0) return;
    const { resumed, groups } = planPacks(deps, m, missing, needed);
    for (const state of resumed) await downloadPack(deps, state, needed, stats, pacer);
    for (const g of groups) {
      if (pacer.capped) await downloadPack(deps, await createPack(deps, m, g, needed, stats), needed, stats, pacer);
      else await streamNewPack(deps, m, g, needed, stats, pacer);
    }
  }
  throw new FetchError(`release ${m.version}: chunks still failing verification after 5 rounds`);
}

/** Packs already under way for these chunks (their files say how far they got), and groups of the rest. */
function planPacks(
  deps: FetchDeps,
  m: ReleaseManifest,
  missing: string[],
  sizes: Map<string, number>,
): { resumed: PackState[]; groups: string[][] } {
  const resumed: PackState[] = [];
  const covered = new Set<string>();
  for (const f of existsSync(deps.dir) ? readdirSync(deps.dir) : []) {
    if (!f.endsWith('.json')) continue;
    const r = packStateSchema.safeParse(parseStrictJson(readFileSync(join(deps.dir, f))));
    // Only packs of this release holding chunks of this tier (a later tier's pack waits its turn).
    if (!r.success || r.data.release !== `${m.app}@${m.version}` || !r.data.digests.some((d) => sizes.has(d))) continue;
    resumed.push(r.data);
    for (const d of r.data.digests) covered.add(d);
  }
  let group: string[] = [];
  let bytes = 0;
  const groups: string[][] = [];
  for (const d of missing) {
    if (covered.has(d)) continue;
    group.push(d);
    bytes += sizes.get(d)! + ENTRY_HEADER;
    if (bytes >= PACK_MAX_BYTES) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
  }
  if (group.length) groups.push(group);
  return { resumed, groups };
}

/**
 * A pack cannot be longer than its chunks at their signed raw sizes plus brotli's worst-case overhead and
 * the entry headers: a hub that declares more is not believed before a byte is fetched.
 */
function checkPackLength(length: number, digests: string[], sizes: Map<string, number>): void {
  const max = digests.reduce((a, d) => a + ENTRY_HEADER + BROTLI_WORST_CASE(sizes.get(d) ?? 0), 0);
  if (length < 0 || length > max)
    throw new FetchRefused(`hub declared a pack of ${length} bytes for chunks that fit in ${max}`);
}

const packsPath = (deps: FetchDeps) => `/api/v1/vessels/${encodeURIComponent(deps.vesselName)}/packs`;

function savePackState(
  deps: FetchDeps,
  m: ReleaseManifest,
  p: { id: string; length: number; etag: string },
  digests: string[],
): PackState {
  const state: PackState = { ...p, release: `${m.app}@${m.version}`, digests };
  writeFileAtomic(join(deps.dir, `${p.id}.json`), JSON.stringify(state), 0o600);
  return state;
}

/** Fix a pack on the hub (its id and length), to be fetched with paced range requests. */
async function createPack(
  deps: FetchDeps,
  m: ReleaseManifest,
  digests: string[],
  sizes: Map<string, number>,
  stats: FetchStats,
): Promise<PackState> {
  const res = await deps.client.request('POST', packsPath(deps), {
    body: { release: `${m.app}@${m.version}`, digests },
  });
  stats.requests++;
  const p = z
    .strictObject({ id: z.string().regex(/^[0-9a-f]{32}$/), length: z.number().int(), etag: z.string() })
    .parse(JSON.parse(expectOk(res, 'pack').body.toString()));
  checkPackLength(p.length, digests, sizes);
  return savePackState(deps, m, p, digests);
}

/**
 * Fix a pack and receive its bytes in the same round trip (no cap to pace). Its state is on disk before
 * the first byte is, so a cut resumes with range requests like any other pack.
 */
async function streamNewPack(
  deps: FetchDeps,
  m: ReleaseManifest,
  digests: string[],
  sizes: Map<string, number>,
  stats: FetchStats,
  pacer: Pacer,
): Promise<void> {
  let sink: PackSink | undefined;
  try {
    await streamResponse(
      deps,
      async (signal) => {
        const res = await deps.client.stream(packsPath(deps), { accept: PACK_MEDIA_TYPE }, signal, {
          release: `${m.app}@${m.version}`,
          digests,
        });
        stats.requests++;
        if (res.status !== 201)
          throw new FetchRefused(
            `pack for ${m.version}: hub answered ${res.status}: ${(await res.text().catch(() => '')).slice(0, 200)}`,
          );
        const id = res.headers.get('tender-pack-id') ?? '';
        const length = Number(res.headers.get('tender-pack-length') ?? NaN);
        if (!/^[0-9a-f]{32}$/.test(id) || !Number.isSafeInteger(length))
          throw new FetchRefused('hub answered a pack without its id or length');
        checkPackLength(length, digests, sizes);
        sink = new PackSink(
          deps,
          savePackState(deps, m, { id, length, etag: res.headers.get('etag') ?? `"${id}"` }, digests),
          sizes,
          stats,
        );
        return res;
      },
      (piece) => sink!.write(piece),
    );
  } catch (err) {
    if (!sink || !(err instanceof HubUnreachableError) || deps.signal?.aborted) {
      sink?.flush();
      throw err;
    }
    deps.log.info(
      { pack: sink.state.id, at: sink.have, of: sink.state.length, reason: errorMessage(err) },
      'pack download cut; resuming',
    );
  }
  const done = sink!;
  done.flush();
  // Whole in one response (the usual case): nothing to resume, and the part file need not be read again.
  if (done.have >= done.state.length) done.finish();
  else await downloadPack(deps, done.state, sizes, stats, pacer);
}

/**
 * A pack landing in <id>.part: bytes appended as they come (flushed every FLUSH_BYTES, so a cut loses at
 * most that), each complete chunk verified and stored at once. Only the unparsed tail stays in memory.
 */
class PackSink {
  readonly part: string;
  have: number;
  private tail: Buffer;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextReport = 0;

  constructor(
    private readonly deps: FetchDeps,
    readonly state: PackState,
    private readonly sizes: Map<string, number>,
    private readonly stats: FetchStats,
  ) {
    this.part = join(deps.dir, `${state.id}.part`);
    // What is on disk was received before a cut: chunks complete in it are stored again (idempotent).
    this.tail = existsSync(this.part) ? readFileSync(this.part) : Buffer.alloc(0);
    this.have = this.tail.byteLength;
    this.consume();
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
    this.tail = this.tail.byteLength ? Buffer.concat([this.tail, data]) : data;
    this.pending = [];
    this.pendingBytes = 0;
    this.consume();
  }

  finish(): void {
    rmSync(this.part, { force: true });
    rmSync(join(this.deps.dir, `${this.state.id}.json`), { force: true });
  }

  private consume(): void {
    let parsed = 0;
    const { tail } = this;
    while (tail.byteLength - parsed >= ENTRY_HEADER) {
      const digest = tail.subarray(parsed, parsed + 32).toString('hex');
      const len = tail.readUInt32BE(parsed + 32);
      if (tail.byteLength - parsed - ENTRY_HEADER < len) break;
      const compressed = tail.subarray(parsed + ENTRY_HEADER, parsed + ENTRY_HEADER + len);
      parsed += ENTRY_HEADER + len;
      const raw = this.sizes.get(digest);
      if (raw === undefined || this.deps.chunks.has(digest)) continue;
      try {
        this.deps.chunks.put(digest, Buffer.from(compressed), raw);
        this.stats.chunksStored++;
      } catch (err) {
        this.stats.chunksRejected++;
        this.deps.log.warn(
          { chunk: digest.slice(0, 12), reason: errorMessage(err) },
          'chunk failed verification; it will be fetched again',
        );
      }
    }
    this.tail = Buffer.from(tail.subarray(parsed));
    // Plain progress lines for the log: one per tenth of the pack.
    if (this.have >= this.nextReport) {
      this.deps.log.info(
        {
          pack: this.state.id,
          at: this.have,
          of: this.state.length,
          percent: Math.floor((100 * this.have) / Math.max(1, this.state.length)),
        },
        'downloading release chunks',
      );
      this.nextReport = this.have + Math.max(1, Math.ceil(this.state.length / 10));
    }
  }
}

/** Download (or resume) one pack with range requests, paced under a cap. */
async function downloadPack(
  deps: FetchDeps,
  state: PackState,
  sizes: Map<string, number>,
  stats: FetchStats,
  pacer: Pacer,
): Promise<void> {
  const sink = new PackSink(deps, state, sizes, stats);
  const path = `${packsPath(deps)}/${state.id}`;
  while (sink.have < state.length) {
    const offset = sink.have;
    const last = offset + (await pacer.grant(state.length - offset)) - 1;
    try {
      await streamResponse(
        deps,
        async (signal) => {
          const res = await deps.client.stream(
            path,
            { range: `bytes=${offset}-${last}`, 'if-range': state.etag },
            signal,
          );
          stats.requests++;
          if (res.status === 200 && offset > 0)
            throw new FetchError(`pack ${state.id} changed on the hub (no 206); starting it again`);
          if (res.status !== 206 && res.status !== 200)
            throw new FetchError(`pack ${state.id}: hub answered ${res.status}`);
          return res;
        },
        (piece) => sink.write(piece),
      );
      sink.flush();
    } catch (err) {
      sink.flush();
      if (err instanceof HubUnreachableError || err instanceof FetchError) {
        deps.log.info(
          { pack: state.id, at: sink.have, of: state.length, reason: errorMessage(err) },
          'pack download cut; resuming',
        );
        if (deps.signal?.aborted) throw err;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw err;
    }
  }
  sink.finish();
}

/**
 * The bandwidth cap, kept over any 10 s: each range request is granted only as many bytes as the requests
 * of the last 10 s leave room for (across packs and tiers), and waits when there is no room. The link
 * delivers a request's bytes right after it starts, so no 10-second span carries more than the cap.
 */
class Pacer {
  private granted: { at: number; bytes: number }[] = [];
  private readonly budget: number;

  constructor(private readonly bytesPerSecond: number) {
    this.budget = Math.max(MIN_GRANT_BYTES, Math.floor((bytesPerSecond * CAP_WINDOW_MS) / 1000));
  }

  get capped(): boolean {
    return this.bytesPerSecond > 0;
  }

  async grant(want: number): Promise<number> {
    if (this.bytesPerSecond <= 0) return want;
    for (;;) {
      const now = Date.now();
      this.granted = this.granted.filter((g) => g.at > now - CAP_WINDOW_MS);
      const room = this.budget - this.granted.reduce((a, g) => a + g.bytes, 0);
      if (room >= Math.min(want, MIN_GRANT_BYTES)) {
        const bytes = Math.min(want, room);
        this.granted.push({ at: now, bytes });
        return bytes;
      }
      await new Promise((r) => setTimeout(r, this.granted[0]!.at + CAP_WINDOW_MS - now + 1));
    }
  }
}

/** Open a response and stream its body to onPiece; a stall or a trickle past STALL_MS aborts it. */
async function streamResponse(
  deps: FetchDeps,
  open: (signal: AbortSignal) => Promise<Response>,
  onPiece: (b: Buffer) => boolean,
): Promise<void> {
  const stallMs = deps.stall?.ms ?? STALL_MS;
  const minBytes = deps.stall?.minBytes ?? (stallMs / 1000) * MIN_BYTES_PER_STALL_SECOND;
  const ac = new AbortController();
  let lastByteAt = Date.now();
  const startedAt = Date.now();
  // Minimum throughput: a server that drips a byte every few seconds is as dead as a silent one.
  const marks: { at: number; got: number }[] = [];
  let received = 0;
  let stalled: string | undefined;
  const watchdog = setInterval(
    () => {
      const now = Date.now();
      marks.push({ at: now, got: received });
      while (marks.length && marks[0]!.at < now - stallMs) marks.shift();
      const windowBytes = received - (marks[0]?.got ?? 0);
      if (now - lastByteAt > stallMs) stalled = `nothing received for ${Math.round((now - lastByteAt) / 1000)} s`;
      else if (now - startedAt > stallMs && windowBytes < minBytes)
        stalled = `${windowBytes} bytes in the last ${stallMs / 1000} s`;
      if (stalled) ac.abort();
    },
    Math.min(1000, stallMs / 4),
  );
  const onAbort = () => ac.abort();
  deps.signal?.addEventListener('abort', onAbort);
  try {
    const res = await open(ac.signal).catch((err: unknown) => {
      throw stalled ? new HubUnreachableError(`no answer from the hub: stalled (${stalled}); will retry`) : err;
    });
    try {
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        lastByteAt = Date.now();
        received += piece.byteLength;
        if (!onPiece(Buffer.from(piece))) {
          // Past the declared length: whatever else the hub sends is not read.
          ac.abort();
          return;
        }
      }
    } catch (err) {
      throw new HubUnreachableError(
        `pack cut after ${received} bytes: ${stalled ? `stalled (${stalled}); dropped, will resume at the byte` : describeFetchError(err)}`,
      );
    }
  } finally {
    clearInterval(watchdog);
    deps.signal?.removeEventListener('abort', onAbort);
  }
}
