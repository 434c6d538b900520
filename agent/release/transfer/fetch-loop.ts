import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../../shared/errors.js';
import type { ChunkStore } from '../../../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../../../shared/protocol/manifest.js';
import { contentChunks, indexRefs, layerIndexRefs, namedChunks } from '../../../shared/content/release-chunks.js';
import { HubUnreachableError, type HubClient } from '../../hub-client.js';
import { checkDisk, DiskGuardError, DISK_MARGIN_BYTES } from './disk-guard.js';
import {
  createPack,
  openNewPack,
  openPackRange,
  PackRangeError,
  type PackHub,
  type PackRequest,
} from './pack-requests.js';
import { PackSink, type SinkCounters } from './pack-sink.js';
import { packsUnderWay, removePack, savePackState, type PackState } from './pack-state.js';
import { Pacer } from './pacer.js';
import { planPacks } from './planner.js';
import { indexBases, recordIndexes } from './index-bases.js';
import { streamResponse, type StallLimits } from './watchdog.js';
import { backoffDelayMs, sleep } from '../../backoff.js';
import type { TransferCounts } from './progress.js';

const NEVER = new AbortController().signal;

/** A release could not be completed: an index missing after fetching, chunks failing verification. */
export class FetchError extends TenderError {}

// Rounds of "fetch what is missing" per tier: a chunk refused by its digest is asked for again.
const ROUNDS = 5;
// Pause before asking again for a pack range that was cut: short at first (most cuts last seconds), then
// doubling with jitter up to the cap, so a hub answering errors is not asked twice a second for ever.
const RESUME_PAUSE_MS = 500;
const RESUME_PAUSE_CAP_MS = 60_000;
// Attempts in a row that bring no byte before the transfer is given up for now (HubUnreachableError): the
// agent tries again on its next round, and syncing, telemetry and crew actions carry on meanwhile.
const ATTEMPTS_WITHOUT_PROGRESS = 6;
const PROGRESS_EVERY_MS = 1_000;

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
  stall?: StallLimits;
  /** Called about once a second while bytes move, and once at the end: raw bytes stored of those needed. */
  onProgress?: (c: TransferCounts) => void;
}

export interface FetchStats extends SinkCounters {
  requests: number;
}

/** Counters at zero, for one transfer (or several summed). */
export function newFetchStats(): FetchStats {
  return { requests: 0, bytesReceived: 0, chunksStored: 0, chunksRejected: 0, bytesStored: 0, chunksHeld: 0 };
}

/** One release's transfer: what every step needs. */
interface Run {
  deps: FetchDeps;
  m: ReleaseManifest;
  release: string;
  stats: FetchStats;
  pacer: Pacer;
  hub: PackHub;
  /** [wanted layer index, the index of its slot on board]: asked for as deltas. */
  bases: [string, string][];
  /** Whether the next pack request asks for the content's solid groups ahead (the first of the indexes). */
  ahead: boolean;
  /** The most those groups can take on the wire: what the pack's declared length is checked against. */
  aheadBytes: number;
  /** The release's content chunks and raw sizes once every layer index is on board; undefined before. */
  content: () => Map<string, number> | undefined;
  /** Every chunk of the release (named and content) and its raw size, known once `content` is. */
  every: () => Map<string, number> | undefined;
}

/**
 * Fetch what the vessel lacks of a release, in two tiers: first the configs and layer indexes the signed
 * manifest names (one pack, asking the hub to carry after them the solid groups of content the vessel
 * will lack, so a vessel holding a recent release needs one round trip), then the content chunks those
 * indexes list that the local store still lacks (chunks of every release kept on board count). Packs
 * resume at the byte where a cut stopped them, across restarts (offset and validator live on disk); every
 * chunk is verified against its digest as it lands, and a bad one is dropped and fetched again in a later
 * round.
 */
export async function fetchRelease(
  deps: FetchDeps,
  m: ReleaseManifest,
  stats: FetchStats = newFetchStats(),
): Promise<FetchStats> {
  mkdirSync(deps.dir, { recursive: true });
  const named = new Map([...namedChunks(m)].map(([d, s]) => [d, s.raw]));
  const margin = deps.diskMarginBytes ?? DISK_MARGIN_BYTES;
  // Before a byte moves: the indexes plus the images they unpack to must fit with the margin.
  const namedMissing = [...named].reduce((a, [d, s]) => a + (deps.chunks.has(d) ? 0 : s), 0);
  checkDisk(deps.dir, m, namedMissing, margin);
  const hub: PackHub = { client: deps.client, vesselName: deps.vesselName, stats };
  const lacking = new Set(deps.chunks.missing(named.keys()));
  // Progress is counted in raw bytes of what was missing: known for the indexes now, for content once
  // the indexes are on board. A reporter that throws must not cut the download.
  const base = stats.bytesStored;
  let total = namedMissing;
  let content: Map<string, number> | undefined;
  let every: Map<string, number> | undefined;
  const layerIndexes = indexRefs(m).map(([d]) => d);
  // The content's groups are asked ahead when a layer index is lacking (a release changing configs only
  // has none to send) and the disk can take what the hub may then declare.
  const aheadBytes = aheadBound(m, lacking);
  let ahead = layerIndexRefs(m).some(([d]) => lacking.has(d));
  if (ahead)
    try {
      checkDisk(deps.dir, m, namedMissing + aheadBytes, margin);
    } catch (err) {
      if (!(err instanceof DiskGuardError)) throw err;
      ahead = false;
      deps.log.debug({ reason: errorMessage(err) }, 'content not asked ahead of the indexes');
    }
  const run: Run = {
    deps,
    m,
    release: `${m.app}@${m.version}`,
    stats,
    pacer: new Pacer(deps.bytesPerSecond ?? 0),
    hub,
    bases: indexBases(deps.dir, m, lacking, (d) => deps.chunks.has(d)),
    ahead,
    aheadBytes,
    // Known once, when the first content lands (ahead of its tier, or after the indexes): the disk check
    // and the progress total for the content are made then, before a byte of it is stored.
    content: () => {
      if (content) return content;
      // Cheap first: whether every layer index is on board (a delta entry among them asks too).
      if (deps.chunks.missing(layerIndexes).length) return undefined;
      const c = contentChunks(m, deps.chunks);
      if (c.missingIndexes.length) return undefined;
      const missingBytes = deps.chunks.missing(c.chunks.keys()).reduce((a, d) => a + c.chunks.get(d)!, 0);
      // Raw sizes bound the compressed download from above: a conservative check, never an optimistic one.
      checkDisk(deps.dir, m, missingBytes, margin);
      total += missingBytes;
      content = c.chunks;
      return content;
    },
    every: () => {
      if (!every && run.content()) every = new Map([...named, ...content!]);
      return every;
    },
  };
  const report = () => {
    try {
      deps.onProgress?.({ done: stats.bytesStored - base, total, linkBytes: stats.bytesReceived });
    } catch (err) {
      deps.log.debug({ reason: errorMessage(err) }, 'download progress not recorded');
    }
  };
  const ticker = deps.onProgress ? setInterval(report, PROGRESS_EVERY_MS) : undefined;
  ticker?.unref();
  try {
    report();
    await fetchContent(run, named);
    report();
  } finally {
    clearInterval(ticker);
  }
  return stats;
}

async function fetchContent(run: Run, named: Map<string, number>): Promise<void> {
  const { deps, m } = run;
  await fetchTier(run, named);
  run.bases = [];
  run.ahead = false;
  let indexes = contentChunks(m, deps.chunks);
  // An index found damaged on disk was dropped: fetch it again, once.
  if (indexes.missingIndexes.length) {
    await fetchTier(run, named);
    indexes = contentChunks(m, deps.chunks);
  }
  if (indexes.missingIndexes.length)
    throw new FetchError(
      `release ${m.version}: layer index ${indexes.missingIndexes[0]!.slice(0, 12)} not on board after fetching`,
    );
  // The link waits while this runs: the store is asked once, and the answer serves the first round of the
  // tier (what came ahead with the indexes is on board already).
  const content = run.content()!;
  await fetchTier(run, content, deps.chunks.missing(content.keys()));
  recordIndexes(deps.dir, m);
  // Every chunk is on board: what is left of this release's packs (none, as a rule) is dropped.
  for (const p of packsUnderWay(deps.dir)) if (p.release === run.release) removePack(deps.dir, p.id);
}

// A solid group holds chunks of the layers whose index the vessel lacks: their signed sizes, twice over for
// the group's own headers and brotli's worst case, bound what the groups asked ahead can add to a pack.
function aheadBound(m: ReleaseManifest, lackingIndexes: Set<string>): number {
  let bytes = 1024 * 1024;
  for (const img of Object.values(m.images))
    for (const l of img.layers) if (l.index && lackingIndexes.has(l.index[0])) bytes += 2 * l.size;
  return bytes;
}

/**
 * What the next pack request for these chunks asks besides them; content ahead only once per transfer (a
 * retry of that request asks without it: a hub slow to plan is not waited for twice).
 */
const ask = (run: Run, digests: string[]): PackRequest => {
  const want = new Set(digests);
  const ahead = run.ahead;
  run.ahead = false;
  return { bases: run.bases.filter(([t]) => want.has(t)), ahead, aheadBytes: run.aheadBytes };
};

async function fetchTier(run: Run, needed: Map<string, number>, knownMissing?: string[]): Promise<void> {
  const { deps } = run;
  for (let round = 0; round < ROUNDS; round++) {
    const missing = round === 0 && knownMissing ? knownMissing : deps.chunks.missing(needed.keys());
    if (missing.length === 0) return;
    const plan = planPacks(packsUnderWay(deps.dir), run.release, missing, needed);
    const { resumed } = plan;
    // The content comes ahead only in a pack that brings every index: the sink takes it once they are all
    // on board, so with the indexes split over several packs it would be refused.
    if (resumed.length || plan.groups.length !== 1) run.ahead = false;
    for (const state of resumed) await downloadPack(run, state, needed);
    // A resumed pack may bring more than it names (content asked ahead): only what is still missing is asked.
    let groups = plan.groups;
    if (resumed.length) {
      const still = new Set(deps.chunks.missing(groups.flat()));
      groups = groups.map((g) => g.filter((d) => still.has(d))).filter((g) => g.length > 0);
    }
    for (const g of groups) {
      const a = ask(run, g);
      if (run.pacer.capped) {
        const pack = await createPack(run.hub, run.m, g, needed, a);
        await downloadPack(run, savePackState(deps.dir, run.release, pack, g, a.ahead), needed);
      } else await streamNewPack(run, g, needed, a);
    }
  }
  throw new FetchError(`release ${run.m.version}: chunks still failing verification after ${ROUNDS} rounds`);
}

/**
 * Fix a pack and receive its bytes in the same round trip (no cap to pace). Its state is on disk before
 * the first byte is, so a cut resumes with range requests like any other pack.
 */
async function streamNewPack(run: Run, digests: string[], sizes: Map<string, number>, a: PackRequest): Promise<void> {
  const { deps } = run;
  let sink: PackSink | undefined;
  try {
    await streamResponse(
      deps,
      async (signal) => {
        const { res, pack } = await openNewPack(run.hub, run.m, digests, sizes, signal, a);
        const state = savePackState(deps.dir, run.release, pack, digests, a.ahead);
        sink = new PackSink(deps, state, sizes, run.stats, run.every);
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
  else await downloadPack(run, done.state, sizes);
}

/** Download (or resume) one pack with range requests, paced under a cap. */
async function downloadPack(run: Run, state: PackState, sizes: Map<string, number>): Promise<void> {
  const { deps } = run;
  const sink = new PackSink(deps, state, sizes, run.stats, run.every);
  let fruitless = 0;
  while (sink.have < state.length) {
    const offset = sink.have;
    const last = offset + (await run.pacer.grant(state.length - offset)) - 1;
    try {
      await streamResponse(
        deps,
        (signal) => openPackRange(run.hub, state, offset, last, signal),
        (piece) => sink.write(piece),
      );
      sink.flush();
    } catch (err) {
      sink.flush();
      if (!(err instanceof HubUnreachableError || err instanceof PackRangeError)) throw err;
      deps.log.info(
        { pack: state.id, at: sink.have, of: state.length, reason: errorMessage(err) },
        'pack download cut; resuming',
      );
      if (deps.signal?.aborted) throw err;
      fruitless = sink.have > offset ? 0 : fruitless + 1;
      if (fruitless >= ATTEMPTS_WITHOUT_PROGRESS)
        throw new HubUnreachableError(
          `pack ${state.id}: ${fruitless} attempts in a row brought no byte (${errorMessage(err)}); trying again later`,
        );
      await sleep(backoffDelayMs(fruitless, RESUME_PAUSE_MS, RESUME_PAUSE_CAP_MS), deps.signal ?? NEVER);
    }
  }
  sink.finish();
}
