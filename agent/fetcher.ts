import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TenderError, errorMessage } from '../shared/errors.js';
import type { ChunkStore } from '../shared/chunk-store.js';
import type { ReleaseManifest } from '../shared/manifest.js';
import { contentChunks, namedChunks } from '../shared/release-chunks.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { parseStrictJson } from '../shared/strict-json.js';
import { describeFetchError, expectOk, HubUnreachableError, type HubClient } from './hub-client.js';

export class FetchError extends TenderError {}
export class DiskGuardError extends TenderError {}
/** Not an error: the policy says not now (download window, metered link). */
export class TransferDeferred extends TenderError {}

// A few large packs per release: each costs one round trip to create and one to start downloading.
// Counted in raw bytes (the compressed size of content chunks is the hub's to know): ~40 MB on the wire.
const PACK_MAX_BYTES = 128 * 1024 * 1024;
// A connection that delivers nothing for this long is dead even if TCP has not noticed (a black hole).
const STALL_MS = 60_000;
// Less than this in a stall window (1 KB/s) aborts the request; the slowest satellite link does 25 KB/s.
const MIN_BYTES_PER_STALL_WINDOW = 60 * 1024;
// Over this many bytes of partial data, flush to disk: a cut loses at most this much.
const FLUSH_BYTES = 256 * 1024;
// Free space kept beyond what a release needs, so a download never fills the disk for the apps.
export const DISK_MARGIN_BYTES = 512 * 1024 * 1024;
const ENTRY_HEADER = 36;
// The bandwidth cap is promised over any 10 s.
const CAP_WINDOW_MS = 10_000;
// Under a cap, no range request smaller than this (a request costs a round trip of headers).
const MIN_GRANT_BYTES = 16 * 1024;

const packStateSchema = z.strictObject({ id: z.string().regex(/^[0-9a-f]{32}$/), length: z.number().int().min(0), etag: z.string(), release: z.string(), digests: z.array(z.string()) });
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
}

export interface FetchStats {
  requests: number;
  bytesReceived: number;
  chunksStored: number;
  chunksRejected: number;
}

/** Refuse to start a transfer that would leave less than the margin free. */
export function checkDisk(dir: string, m: ReleaseManifest, downloadBytes: number, marginBytes = DISK_MARGIN_BYTES): void {
  const layerBytes = Object.values(m.images).reduce((a, i) => a + i.layers.reduce((b, l) => b + l.size, 0), 0);
  const need = downloadBytes + layerBytes + marginBytes;
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < need) {
    throw new DiskGuardError(`not enough disk for release ${m.version}: needs ${(need / 1e6).toFixed(0)} MB (download, images and a ${(marginBytes / 1e6).toFixed(0)} MB margin), ${(free / 1e6).toFixed(0)} MB free`);
  }
}

/**
 * Fetch what the vessel lacks of a release, in two tiers: first the configs and layer indexes the signed
 * manifest names (one pack), then the content chunks those indexes list and the local store lacks
 * (chunks of every release kept on board count). Packs resume at the byte where a cut stopped them, across
 * restarts (offset and validator live on disk); every chunk is verified against its digest as it lands,
 * and a bad one is dropped and fetched again in a later round.
 */
export async function fetchRelease(deps: FetchDeps, m: ReleaseManifest, stats: FetchStats = { requests: 0, bytesReceived: 0, chunksStored: 0, chunksRejected: 0 }): Promise<FetchStats> {
  mkdirSync(deps.dir, { recursive: true });
  const named = new Map([...namedChunks(m)].map(([d, s]) => [d, s.raw]));
  const margin = deps.diskMarginBytes ?? DISK_MARGIN_BYTES;
  // Before a byte moves: the indexes plus the images they unpack to must fit with the margin.
  checkDisk(deps.dir, m, [...named].reduce((a, [d, s]) => a + (deps.chunks.has(d) ? 0 : s), 0), margin);
  const pacer = new Pacer(deps.bytesPerSecond ?? 0);
  await fetchTier(deps, m, named, stats, pacer);
  const content = contentChunks(m, deps.chunks);
  if (content.missingIndexes.length) throw new FetchError(`release ${m.version}: layer index ${content.missingIndexes[0]!.slice(0, 12)} not on board after fetching`);
  // Raw sizes bound the compressed download from above: a conservative check, never an optimistic one.
  const missingRaw = [...content.chunks].reduce((a, [d, raw]) => a + (deps.chunks.has(d) ? 0 : raw), 0);
  checkDisk(deps.dir, m, missingRaw, margin);
  await fetchTier(deps, m, content.chunks, stats, pacer);
  return stats;
}

async function fetchTier(deps: FetchDeps, m: ReleaseManifest, needed: Map<string, number>, stats: FetchStats, pacer: Pacer): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const missing = [...needed.keys()].filter((d) => !deps.chunks.has(d));
    if (missing.length === 0) return;
    for (const state of await packsFor(deps, m, missing, needed, stats)) await downloadPack(deps, state, needed, stats, pacer);
  }
  throw new FetchError(`release ${m.version}: chunks still failing verification after 5 rounds`);
}

async function packsFor(deps: FetchDeps, m: ReleaseManifest, missing: string[], sizes: Map<string, number>, stats: FetchStats): Promise<PackState[]> {
  // Resume packs already under way (their files say how far they got).
  const states: PackState[] = [];
  const covered = new Set<string>();
  for (const f of existsSync(deps.dir) ? (await import('node:fs')).readdirSync(deps.dir) : []) {
    if (!f.endsWith('.json')) continue;
    const r = packStateSchema.safeParse(parseStrictJson(readFileSync(join(deps.dir, f))));
    // Only packs of this release holding chunks of this tier (a later tier's pack waits its turn).
    if (!r.success || r.data.release !== `${m.app}@${m.version}` || !r.data.digests.some((d) => sizes.has(d))) continue;
    states.push(r.data);
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
  for (const g of groups) {
    const res = await deps.client.request('POST', `/api/v1/vessels/${encodeURIComponent(deps.vesselName)}/packs`, { body: { release: `${m.app}@${m.version}`, digests: g } });
    stats.requests++;
    const p = z.strictObject({ id: z.string().regex(/^[0-9a-f]{32}$/), length: z.number().int(), etag: z.string() }).parse(JSON.parse(expectOk(res, 'pack').body.toString()));
    const state: PackState = { ...p, release: `${m.app}@${m.version}`, digests: g };
    writeFileAtomic(join(deps.dir, `${p.id}.json`), JSON.stringify(state), 0o600);
    states.push(state);
  }
  return states;
}

/** Download (or resume) one pack into <id>.part, verifying and storing each chunk as it completes. */
async function downloadPack(deps: FetchDeps, state: PackState, sizes: Map<string, number>, stats: FetchStats, pacer: Pacer): Promise<void> {
  const part = join(deps.dir, `${state.id}.part`);
  // What is on disk was received before a cut: chunks complete in it are stored again (idempotent), and
  // only the unparsed tail stays in memory, so a large pack costs one chunk of RAM, not the pack.
  let tail: Buffer = existsSync(part) ? readFileSync(part) : Buffer.alloc(0);
  let have = tail.byteLength;
  let nextReport = 0;
  const consume = () => {
    let parsed = 0;
    while (tail.byteLength - parsed >= ENTRY_HEADER) {
      const digest = tail.subarray(parsed, parsed + 32).toString('hex');
      const len = tail.readUInt32BE(parsed + 32);
      if (tail.byteLength - parsed - ENTRY_HEADER < len) break;
      const compressed = tail.subarray(parsed + ENTRY_HEADER, parsed + ENTRY_HEADER + len);
      parsed += ENTRY_HEADER + len;
      const raw = sizes.get(digest);
      if (raw === undefined || deps.chunks.has(digest)) continue;
      try {
        deps.chunks.put(digest, Buffer.from(compressed), raw);
        stats.chunksStored++;
      } catch (err) {
        stats.chunksRejected++;
        deps.log.warn({ chunk: digest.slice(0, 12), reason: errorMessage(err) }, 'chunk failed verification; it will be fetched again');
      }
    }
    tail = Buffer.from(tail.subarray(parsed));
    // Plain progress lines for the log: one per tenth of the pack.
    if (have >= nextReport) {
      deps.log.info({ pack: state.id, at: have, of: state.length, percent: Math.floor((100 * have) / Math.max(1, state.length)) }, 'downloading release chunks');
      nextReport = have + Math.max(1, Math.ceil(state.length / 10));
    }
  };
  consume();
  while (have < state.length) {
    const offset = have;
    const last = offset + (await pacer.grant(state.length - offset)) - 1;
    const path = `/api/v1/vessels/${encodeURIComponent(deps.vesselName)}/packs/${state.id}`;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = () => {
      if (!pendingBytes) return;
      const data = Buffer.concat(pending);
      appendFileSync(part, data);
      have += data.byteLength;
      tail = tail.byteLength ? Buffer.concat([tail, data]) : data;
      pending = [];
      pendingBytes = 0;
      consume();
    };
    try {
      await rangeGet(deps, path, offset, last, state, (piece) => {
        // Never past the declared length: a hub that sends more is not believed.
        const room = state.length - (have + pendingBytes);
        const take = piece.subarray(0, Math.max(0, room));
        pending.push(Buffer.from(take));
        pendingBytes += take.byteLength;
        stats.bytesReceived += piece.byteLength;
        if (pendingBytes >= FLUSH_BYTES) flush();
      });
      stats.requests++;
      flush();
    } catch (err) {
      stats.requests++;
      flush();
      if (err instanceof HubUnreachableError || err instanceof FetchError) {
        deps.log.info({ pack: state.id, at: have, of: state.length, reason: errorMessage(err) }, 'pack download cut; resuming');
        if (deps.signal?.aborted) throw err;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw err;
    }
  }
  rmSync(part, { force: true });
  rmSync(join(deps.dir, `${state.id}.json`), { force: true });
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

/** GET a byte range, streaming pieces to onPiece; a stall past STALL_MS aborts the request. */
async function rangeGet(deps: FetchDeps, path: string, offset: number, last: number, state: PackState, onPiece: (b: Buffer) => void): Promise<void> {
  const ac = new AbortController();
  let lastByteAt = Date.now();
  const startedAt = Date.now();
  // Minimum throughput: a server that drips a byte every few seconds is as dead as a silent one.
  const marks: { at: number; got: number }[] = [];
  let received = 0;
  const watchdog = setInterval(() => {
    const now = Date.now();
    marks.push({ at: now, got: received });
    while (marks.length && marks[0]!.at < now - STALL_MS) marks.shift();
    const windowBytes = received - (marks[0]?.got ?? 0);
    if (now - lastByteAt > STALL_MS || (now - startedAt > STALL_MS && windowBytes < MIN_BYTES_PER_STALL_WINDOW)) ac.abort();
  }, 1000);
  const onAbort = () => ac.abort();
  deps.signal?.addEventListener('abort', onAbort);
  try {
    const res = await deps.client.stream(path, { range: `bytes=${offset}-${last}`, 'if-range': state.etag }, ac.signal);
    if (res.status === 200 && offset > 0) throw new FetchError(`pack ${state.id} changed on the hub (no 206); starting it again`);
    if (res.status !== 206 && res.status !== 200) throw new FetchError(`pack ${state.id}: hub answered ${res.status}`);
    let got = 0;
    try {
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        lastByteAt = Date.now();
        onPiece(Buffer.from(piece));
        got += piece.byteLength;
        received += piece.byteLength;
      }
    } catch (err) {
      throw new HubUnreachableError(`pack ${state.id} cut after ${got} bytes: ${describeFetchError(err)}`);
    }
  } finally {
    clearInterval(watchdog);
    deps.signal?.removeEventListener('abort', onAbort);
  }
}
