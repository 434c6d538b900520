import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { TenderError, errorMessage } from '../shared/errors.js';
import { verifyCompressedChunk, type ChunkStore } from '../shared/chunk-store.js';
import type { ReleaseManifest } from '../shared/manifest.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { parseStrictJson } from '../shared/strict-json.js';
import { describeFetchError, expectOk, HubUnreachableError, type HubClient } from './hub-client.js';

export class FetchError extends TenderError {}
export class DiskGuardError extends TenderError {}
/** Not an error: the policy says not now (download window, metered link). */
export class TransferDeferred extends TenderError {}

// A few large packs per release: each costs one round trip to create and one to start downloading.
const PACK_MAX_BYTES = 64 * 1024 * 1024;
// A connection that delivers nothing for this long is dead even if TCP has not noticed (a black hole).
const STALL_MS = 60_000;
// Less than this in a stall window (1 KB/s) aborts the request; the slowest satellite link does 25 KB/s.
const MIN_BYTES_PER_STALL_WINDOW = 60 * 1024;
// Over this many bytes of partial data, flush to disk: a cut loses at most this much.
const FLUSH_BYTES = 256 * 1024;
// Free space kept beyond what a release needs, so a download never fills the disk for the apps.
export const DISK_MARGIN_BYTES = 512 * 1024 * 1024;
const ENTRY_HEADER = 36;
// Under a bandwidth cap, one range request per this window (the cap is promised over any 10 s).
const CAP_WINDOW_MS = 10_000;

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
}

export interface FetchStats {
  requests: number;
  bytesReceived: number;
  chunksStored: number;
  chunksRejected: number;
}

/** Every chunk the release needs, with raw and compressed sizes. */
export function releaseChunks(m: ReleaseManifest): Map<string, { raw: number; comp: number }> {
  const out = new Map<string, { raw: number; comp: number }>();
  for (const img of Object.values(m.images)) for (const c of [...(img.config?.chunks ?? []), ...img.layers.flatMap((l) => l.chunks ?? [])]) out.set(c[0], { raw: c[1], comp: c[2] });
  return out;
}

/** Refuse to start a transfer that would leave less than the margin free. */
export function checkDisk(dir: string, m: ReleaseManifest, missingCompressed: number): void {
  const layerBytes = Object.values(m.images).reduce((a, i) => a + i.layers.reduce((b, l) => b + l.size, 0), 0);
  const need = missingCompressed + layerBytes + DISK_MARGIN_BYTES;
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < need) {
    throw new DiskGuardError(`not enough disk for release ${m.version}: needs ${(need / 1e6).toFixed(0)} MB (download, images and a ${DISK_MARGIN_BYTES / 1e6} MB margin), ${(free / 1e6).toFixed(0)} MB free`);
  }
}

/**
 * Fetch the chunks of a release that the vessel lacks (chunks of every release kept on board count), in a
 * few packs, each resumable at the byte where a cut stopped it, across restarts (offset and validator
 * live on disk). Every chunk is verified against its digest as it lands; a bad one is dropped and fetched
 * again in a later round.
 */
export async function fetchRelease(deps: FetchDeps, m: ReleaseManifest, stats: FetchStats = { requests: 0, bytesReceived: 0, chunksStored: 0, chunksRejected: 0 }): Promise<FetchStats> {
  mkdirSync(deps.dir, { recursive: true });
  const needed = releaseChunks(m);
  for (let round = 0; round < 5; round++) {
    const missing = [...needed.keys()].filter((d) => !deps.chunks.has(d));
    if (missing.length === 0) return stats;
    if (round === 0) checkDisk(deps.dir, m, missing.reduce((a, d) => a + needed.get(d)!.comp, 0));
    for (const state of await packsFor(deps, m, missing, needed, stats)) await downloadPack(deps, state, needed, stats);
  }
  throw new FetchError(`release ${m.version}: chunks still failing verification after 5 rounds`);
}

async function packsFor(deps: FetchDeps, m: ReleaseManifest, missing: string[], sizes: Map<string, { comp: number }>, stats: FetchStats): Promise<PackState[]> {
  // Resume packs already under way (their files say how far they got).
  const states: PackState[] = [];
  const covered = new Set<string>();
  for (const f of existsSync(deps.dir) ? (await import('node:fs')).readdirSync(deps.dir) : []) {
    if (!f.endsWith('.json')) continue;
    const r = packStateSchema.safeParse(parseStrictJson(readFileSync(join(deps.dir, f))));
    if (!r.success || r.data.release !== `${m.app}@${m.version}`) continue;
    states.push(r.data);
    for (const d of r.data.digests) covered.add(d);
  }
  let group: string[] = [];
  let bytes = 0;
  const groups: string[][] = [];
  for (const d of missing) {
    if (covered.has(d)) continue;
    group.push(d);
    bytes += sizes.get(d)!.comp + ENTRY_HEADER;
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
async function downloadPack(deps: FetchDeps, state: PackState, sizes: Map<string, { raw: number }>, stats: FetchStats): Promise<void> {
  const part = join(deps.dir, `${state.id}.part`);
  // Re-read what is on disk: chunks completed before a cut are stored already (store.put is idempotent).
  let buffered = existsSync(part) ? readFileSync(part) : Buffer.alloc(0);
  let parsed = 0;
  const consume = () => {
    while (buffered.byteLength - parsed >= ENTRY_HEADER) {
      const digest = buffered.subarray(parsed, parsed + 32).toString('hex');
      const len = buffered.readUInt32BE(parsed + 32);
      if (buffered.byteLength - parsed - ENTRY_HEADER < len) return;
      const compressed = buffered.subarray(parsed + ENTRY_HEADER, parsed + ENTRY_HEADER + len);
      parsed += ENTRY_HEADER + len;
      const raw = sizes.get(digest)?.raw;
      if (raw === undefined || deps.chunks.has(digest)) continue;
      try {
        verifyCompressedChunk(digest, compressed, raw);
        deps.chunks.put(digest, Buffer.from(compressed), raw);
        stats.chunksStored++;
      } catch (err) {
        stats.chunksRejected++;
        deps.log.warn({ chunk: digest.slice(0, 12), reason: errorMessage(err) }, 'chunk failed verification; it will be fetched again');
      }
    }
  };
  consume();
  let nextStart = 0;
  while (buffered.byteLength < state.length) {
    const offset = buffered.byteLength;
    const rate = deps.bytesPerSecond ?? 0;
    // Under a cap, ask for one window's worth at a time and start windows CAP_WINDOW_MS apart: no
    // 10-second span on the link can then carry more than the cap allows, whatever TCP buffers do.
    let last = state.length - 1;
    if (rate > 0) {
      const wait = nextStart - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      nextStart = Date.now() + CAP_WINDOW_MS;
      last = Math.min(state.length, offset + Math.max(16 * 1024, Math.floor((rate * CAP_WINDOW_MS) / 1000))) - 1;
    }
    const path = `/api/v1/vessels/${encodeURIComponent(deps.vesselName)}/packs/${state.id}`;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = () => {
      if (!pendingBytes) return;
      const data = Buffer.concat(pending);
      appendFileSync(part, data);
      buffered = Buffer.concat([buffered, data]);
      pending = [];
      pendingBytes = 0;
      consume();
    };
    try {
      await rangeGet(deps, path, offset, last, state, (piece) => {
        // Never past the declared length: a hub that sends more is not believed.
        const room = state.length - (buffered.byteLength + pendingBytes);
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
        deps.log.info({ pack: state.id, at: buffered.byteLength, of: state.length, reason: errorMessage(err) }, 'pack download cut; resuming');
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
