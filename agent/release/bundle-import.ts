import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { createChunkStore, type ChunkStore } from '../../shared/content/chunk-store.js';
import type { DockerEngine } from '../../shared/docker.js';
import { BundleDecoder, type BundleHeader } from '../../shared/protocol/bundle.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { assertRootFresh, type TrustedRoot } from '../../shared/trust/root.js';
import { loadLayerIndex, namedChunks, releaseChunkOrder } from '../../shared/content/release-chunks.js';
import type { StateStore } from '../state-store.js';
import { createBoardReleases, manifestDigest } from './board-releases.js';
import { checkManifestBounds, trustedTime } from './bounds.js';
import { correctedNow } from '../clock.js';
import { addCarried } from './carried.js';
import { stageRelease } from './stage.js';

/** A bundle refused: nothing of it was staged, the release is not on board. */
export class BundleImportError extends TenderError {}

// A bundle is at most a whole release: a few GB. Past this it is not a bundle (a stream that never ends).
const MAX_BUNDLE_BYTES = 64 * 1024 ** 3;

export interface BundleImportDeps {
  store: StateStore;
  /** The vessel's chunk store; only chunks of a bundle verified whole are put in it. */
  chunks: ChunkStore;
  docker: DockerEngine;
  root: TrustedRoot;
  dataDir: string;
  log: Logger;
}

export interface BundleImportResult {
  app: string;
  version: string;
  sequence: number;
  chunks: number;
  bytes: number;
  /** The release was on board already (same manifest): nothing new was staged. */
  alreadyOnBoard: boolean;
}

/**
 * Import a release carried aboard (`tender bundle import`, the console's upload): verified exactly as a
 * download — the manifest against the trusted root and the rollback rule, every chunk against its digest
 * under its signed size, every layer reassembled and checked before `docker load` (stage.ts) — then
 * recorded on board and set as a carried target, which the controller applies under the same rules as
 * the hub's (hold, window). Chunks land in a scratch store until the whole bundle has been read and its
 * end frame matched: a truncated, altered or foreign bundle leaves nothing behind.
 */
export async function importBundle(
  deps: BundleImportDeps,
  input: Readable | AsyncIterable<Buffer>,
  by: string,
): Promise<BundleImportResult> {
  const scratchDir = join(deps.dataDir, 'import', randomBytes(6).toString('hex'));
  mkdirSync(scratchDir, { recursive: true });
  try {
    return await importInto(deps, input, by, createChunkStore(scratchDir));
  } finally {
    rmSync(scratchDir, { recursive: true, force: true });
  }
}

interface Reading {
  header?: BundleHeader;
  manifest?: { m: ReleaseManifest; bytes: Buffer };
  /** Raw size of every chunk the release may carry that is known so far (manifest, then indexes). */
  sizes: Map<string, number>;
  indexes: Set<string>;
  chunks: number;
  bytes: number;
}

async function importInto(
  deps: BundleImportDeps,
  input: Readable | AsyncIterable<Buffer>,
  by: string,
  scratch: ChunkStore,
): Promise<BundleImportResult> {
  const releases = createBoardReleases(deps.store.db);
  const dec = new BundleDecoder();
  const r: Reading = { sizes: new Map(), indexes: new Set(), chunks: 0, bytes: 0 };
  const refuse = (why: string): never => {
    throw new BundleImportError(`bundle refused: ${why}; nothing staged`);
  };
  try {
    for await (const piece of input) {
      r.bytes += piece.byteLength;
      if (r.bytes > MAX_BUNDLE_BYTES) refuse(`over ${MAX_BUNDLE_BYTES} bytes`);
      for (const f of dec.push(Buffer.from(piece))) {
        if (f.type === 'header') r.header = f.header;
        else if (f.type === 'manifest') r.manifest = checkManifest(deps, releases, f.bytes, r);
        else takeChunk(deps, scratch, r, f.digest, f.compressed);
      }
    }
    dec.finish();
  } catch (err) {
    if (err instanceof BundleImportError) throw err;
    refuse(errorMessage(err));
  }
  const { m, bytes } = r.manifest!;
  const both = unionStore(scratch, deps.chunks);
  const order = releaseChunkOrder(m, both);
  if (!order) refuse(`a layer index of ${m.app}@${m.version} is neither in the bundle nor on board`);
  const lacking = both.missing(order!);
  if (lacking.length)
    refuse(`it lacks ${lacking.length} chunk(s) this vessel does not hold (first ${lacking[0]!.slice(0, 12)})`);
  const already = releases.get(m.app, m.version);
  if (!already) {
    try {
      // Every layer reassembled from the chunks and checked against its digest before docker load.
      await stageRelease(deps.docker, m, both);
    } catch (err) {
      refuse(errorMessage(err));
    }
    for (const d of order!) if (scratch.has(d)) deps.chunks.put(d, scratch.get(d), r.sizes.get(d)!);
    releases.add(m, bytes);
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  const importedAt = new Date().toISOString();
  deps.store.set(
    'carried',
    addCarried(deps.store.get('carried') ?? [], {
      app: m.app,
      version: m.version,
      sequence: m.sequence,
      digest,
      importedAt,
      by,
    }),
  );
  deps.store.event('bundle.imported', {
    app: m.app,
    version: m.version,
    sequence: m.sequence,
    chunks: r.chunks,
    bytes: r.bytes,
    by,
    at: importedAt,
  });
  deps.log.info({ release: `${m.app}@${m.version}`, chunks: r.chunks, bytes: r.bytes }, 'bundle imported');
  return {
    app: m.app,
    version: m.version,
    sequence: m.sequence,
    chunks: r.chunks,
    bytes: r.bytes,
    alreadyOnBoard: !!already,
  };
}

/** The manifest as the controller checks a fetched one: signatures, fresh root, no replay of an older release. */
function checkManifest(
  deps: BundleImportDeps,
  releases: ReturnType<typeof createBoardReleases>,
  bytes: Buffer,
  r: Reading,
): { m: ReleaseManifest; bytes: Buffer } {
  const m = verifyManifest(deps.root, bytes);
  if (r.header && (r.header.app !== m.app || r.header.version !== m.version))
    throw new BundleImportError(
      `bundle refused: its header names ${r.header.app}@${r.header.version} but the ` +
        `signed manifest is ${m.app}@${m.version}; nothing staged`,
    );
  const now = correctedNow(deps.store.get('hub.skewMs'));
  // New installs need fresh trust metadata, as from the hub (on the corrected clock).
  assertRootFresh(deps.root, new Date(trustedTime(deps.store, now)));
  const onBoard = releases.get(m.app, m.version);
  if (onBoard && onBoard.digest !== manifestDigest(bytes))
    throw new BundleImportError(
      `bundle refused: release ${m.app}@${m.version} on board has another manifest ` +
        `(digest ${onBoard.digest.slice(0, 12)})`,
    );
  const newest = releases.maxSequence(m.app, m.version);
  if (!onBoard && m.sequence <= newest)
    throw new BundleImportError(
      `bundle refused: release ${m.app}@${m.version} (#${m.sequence}) is older than ` +
        `what this vessel has installed of ${m.app} (#${newest}), as a rollback attack ` +
        `would be; nothing staged`,
    );
  try {
    checkManifestBounds(m, { newest, now });
  } catch (err) {
    throw new BundleImportError(`bundle refused: ${errorMessage(err)}; nothing staged`);
  }
  for (const [d, s] of namedChunks(m)) r.sizes.set(d, s.raw);
  for (const img of Object.values(m.images))
    for (const l of img.layers) {
      if (!l.index) continue;
      r.indexes.add(l.index[0]);
      // An index the vessel holds already lists content the bundle may carry.
      if (deps.chunks.has(l.index[0])) addIndexContent(deps.chunks, l.index, r);
    }
  return { m, bytes };
}

function addIndexContent(store: ChunkStore, ref: [string, number, number], r: Reading): void {
  for (const [d, raw] of loadLayerIndex(store, ref).chunks) r.sizes.set(d, raw);
}

/** One chunk: part of the release, inflating to its signed size with its digest; else the bundle is refused. */
function takeChunk(deps: BundleImportDeps, scratch: ChunkStore, r: Reading, digest: string, compressed: Buffer): void {
  if (!r.manifest) throw new BundleImportError('bundle refused: a chunk before the manifest; nothing staged');
  const raw = r.sizes.get(digest);
  if (raw === undefined)
    throw new BundleImportError(
      `bundle refused: chunk ${digest.slice(0, 12)} is not part of ` +
        `${r.manifest.m.app}@${r.manifest.m.version}; nothing staged`,
    );
  r.chunks++;
  if (deps.chunks.has(digest) || scratch.has(digest)) return;
  // put() inflates under the signed size and checks the digest: an altered chunk stops the import here.
  scratch.put(digest, compressed, raw);
  if (r.indexes.has(digest)) {
    const ref = [digest, raw, compressed.byteLength] as [string, number, number];
    addIndexContent(scratch, ref, r);
  }
}

/** Reads from the scratch store first, then the vessel's: what the release needs, wherever it is. */
function unionStore(scratch: ChunkStore, main: ChunkStore): ChunkStore {
  return {
    ...main,
    has: (d) => scratch.has(d) || main.has(d),
    get: (d) => (scratch.has(d) ? scratch.get(d) : main.get(d)),
    missing: (ds) => main.missing(scratch.missing(ds)),
    size: (d) => (scratch.has(d) ? scratch.size(d) : main.size(d)),
    remove: (d) => {
      scratch.remove(d);
      main.remove(d);
    },
    put: (d, c, raw) => scratch.put(d, c, raw),
  };
}
