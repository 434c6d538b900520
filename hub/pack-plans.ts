import { ChunkError, verifyCompressedChunk } from '../shared/content/chunk-store.js';
import { decodeLayerIndex, LayerIndexError } from '../shared/content/layer-index.js';
import { indexRefs, indexSlots, layerIndexRefs, namedChunks } from '../shared/content/release-chunks.js';
import {
  compressBlob,
  encodeIndexDeltaRaw,
  encodeSolidRaw,
  sha256hex,
  groupChunks,
  DELTA_FORMATS,
  type DeltaFormat,
} from '../shared/content/solid.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import { DOWNLOAD_ENTRY_HEADER_BYTES } from '../shared/protocol/pack.js';
import type { HubChunkStore, HubStore, StoredRelease } from './store/hub-store.js';
import { storedManifest } from './releases.js';
import type { HubDeps } from './deps.js';

/** A solid group stored in the chunk store: its blob's digest and the chunks it stands for. */
export interface SolidGroup {
  digest: string;
  members: string[];
}

// Releases before the target a plan is computed against: the common holdings (the previous release, or
// the one before). Any other holding gets per-chunk entries, as before.
const PLAN_DEPTH = 2;

/**
 * Content chunks of a release, digest → raw size in index order; undefined when an index is missing. The
 * plans' twin of hub/release-chunks.ts, which does not keep sizes.
 */
async function contentSizes(m: ReleaseManifest, chunks: HubChunkStore): Promise<Map<string, number> | undefined> {
  const out = new Map<string, number>();
  for (const img of Object.values(m.images)) {
    for (const l of img.layers) {
      if (!l.index) continue;
      if (!(await chunks.has(l.index[0]))) return undefined;
      const ix = decodeLayerIndex(verifyCompressedChunk(l.index[0], await chunks.read(l.index[0]), l.index[1]));
      for (const [d, raw] of ix.chunks) out.set(d, raw);
    }
  }
  return out;
}

/**
 * Per (from, to) release pair, the chunks `to` adds, grouped by a few MB in layer order and compressed as
 * one stream per group (solid groups), stored in the chunk store under the digest of their raw bytes.
 * Computed once per release (against the previous PLAN_DEPTH of its app) and cached; from the stored
 * blobs after a restart, only the hashing is redone. A vessel's pack uses a group when it lacks every
 * member of it, and per-chunk entries for the rest.
 */
export class PackPlans {
  private readonly plans = new Map<number, Promise<SolidGroup[]>>();
  private readonly deltas = new Map<string, Promise<string | undefined>>();
  private readonly manifests = new Map<number, ReleaseManifest>();
  private readonly indexSets = new Map<string, Promise<Set<string> | undefined>>();
  private readonly chunkSets = new Map<number, Promise<Set<string> | undefined>>();

  constructor(
    private readonly store: HubStore,
    private readonly quality: number,
  ) {}

  /** The release's groups if they are ready within `waitMs`; none otherwise (per-chunk entries serve). */
  async ready(releaseId: number, waitMs: number): Promise<SolidGroup[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<SolidGroup[]>((resolve) => {
      timer = setTimeout(() => resolve([]), waitMs);
    });
    try {
      return await Promise.race([this.groups(releaseId).catch(() => []), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  groups(releaseId: number): Promise<SolidGroup[]> {
    let p = this.plans.get(releaseId);
    if (!p) {
      p = this.compute(releaseId);
      // A failed plan is tried again next time (an index uploaded late, a store hiccup).
      p.catch(() => this.plans.delete(releaseId));
      // Then, in the background, what the first vessel's pack request would otherwise wait for.
      p.then(() => this.warm(releaseId)).catch(() => {});
      if (this.plans.size > 64) this.plans.delete(this.plans.keys().next().value!);
      this.plans.set(releaseId, p);
    }
    return p;
  }

  async manifest(releaseId: number): Promise<ReleaseManifest | undefined> {
    let m = this.manifests.get(releaseId);
    if (!m) {
      // Under the root in force when the hub accepted it, as the pack route checks it (not the latest root,
      // which may have rotated its key out since).
      const release = await this.store.releases.get(releaseId);
      if (!release) return undefined;
      m = (await storedManifest(this.store, release)).m;
      if (this.manifests.size > 64) this.manifests.clear();
      this.manifests.set(releaseId, m);
    }
    return m;
  }

  /**
   * Every chunk digest of the release (configs, layer indexes, the content they list): what a vessel may
   * ask for in its packs. Undefined while a layer index is not in the store.
   */
  releaseChunks(releaseId: number): Promise<Set<string> | undefined> {
    return cached(this.chunkSets, releaseId, 32, async () => {
      const m = await this.manifest(releaseId);
      if (!m) return undefined;
      const out = new Set(namedChunks(m).keys());
      for (const [d, raw] of indexRefs(m)) {
        const listed = await this.indexChunks(m.app, d, raw);
        if (!listed) return undefined;
        for (const c of listed) out.add(c);
      }
      return out;
    });
  }

  /**
   * Compute ahead what a vessel holding one of the releases planned against asks for first: the chunk
   * set of the release, the layer indexes it holds (decoded, so the groups sent ahead are chosen at
   * once), and the index deltas from the same slots in the format current agents apply.
   */
  private async warm(releaseId: number): Promise<void> {
    const r = await this.store.releases.get(releaseId);
    const m = await this.manifest(releaseId);
    if (!r || !m) return;
    await this.releaseChunks(releaseId);
    const target = indexSlots(m);
    for (const from of await this.before(r, PLAN_DEPTH)) {
      const fm = await this.manifest(from.id);
      if (!fm) continue;
      for (const [d, raw] of indexRefs(fm)) await this.indexChunks(fm.app, d, raw);
      for (const [slot, base] of indexSlots(fm)) {
        const t = target.get(slot);
        if (t && t !== base) await this.delta(releaseId, t, base, DELTA_FORMATS[DELTA_FORMATS.length - 1]!);
      }
    }
  }

  /** Releases of the same app published before this one, newest first. */
  private async before(r: StoredRelease, n: number): Promise<StoredRelease[]> {
    const all = await this.store.releases.list({ app: r.app, limit: 200 });
    return all.filter((x) => x.sequence < r.sequence).slice(0, n);
  }

  private async compute(releaseId: number): Promise<SolidGroup[]> {
    const { chunks } = this.store;
    const r = await this.store.releases.get(releaseId);
    const m = await this.manifest(releaseId);
    if (!r || !m) return [];
    const sizes = await contentSizes(m, chunks);
    if (!sizes) throw new Error(`release ${r.app}@${r.version}: a layer index is not on the hub yet`);
    const out: SolidGroup[] = [];
    const covered = new Set<string>();
    for (const from of await this.before(r, PLAN_DEPTH)) {
      const fm = await this.manifest(from.id);
      const held = fm && (await contentSizes(fm, chunks));
      if (!held) continue;
      const level = [...sizes].filter(([d]) => !held.has(d) && !covered.has(d));
      for (const g of await this.groupLevel(level)) {
        out.push(g);
        for (const d of g.members) covered.add(d);
      }
    }
    return out;
  }

  /** Chunks (digest, raw size) into groups of about SOLID_GROUP_BYTES, each stored as one blob. */
  private async groupLevel(level: [string, number][]): Promise<SolidGroup[]> {
    const out: SolidGroup[] = [];
    for (const group of groupChunks(level)) {
      const g = await this.storeGroup(group);
      if (g) out.push(g);
    }
    return out;
  }

  private async storeGroup(group: [string, number][]): Promise<SolidGroup | undefined> {
    const { chunks } = this.store;
    const parts: { digest: string; raw: Buffer }[] = [];
    let perChunk = 0;
    for (const [d, rawSize] of group) {
      const comp = await chunks.read(d);
      perChunk += DOWNLOAD_ENTRY_HEADER_BYTES + comp.byteLength;
      parts.push({ digest: d, raw: verifyCompressedChunk(d, comp, rawSize) });
    }
    const members = group.map(([d]) => d);
    const raw = encodeSolidRaw(parts);
    const digest = sha256hex(raw);
    if (!(await chunks.has(digest))) await chunks.put(digest, await compressBlob(raw, this.quality), raw.byteLength);
    // Worth it only when smaller than the members sent one by one (it always is, but never promise more).
    const size = (await chunks.size(digest)) ?? Infinity;
    return size + DOWNLOAD_ENTRY_HEADER_BYTES < perChunk ? { digest, members } : undefined;
  }

  /**
   * A delta blob that builds `target` (a layer index of release `releaseId`) from `base` (a layer index of
   * a release of the same app the vessel says it holds), in a format it applies; undefined when that is
   * not so, or not smaller.
   */
  delta(releaseId: number, target: string, base: string, format: DeltaFormat): Promise<string | undefined> {
    const key = `${releaseId}:${target}:${base}:${format}`;
    // "Not smaller" is kept; a failure (a store hiccup) is not, and the whole index is sent meanwhile.
    return cached(this.deltas, key, 1024, () => this.computeDelta(releaseId, target, base, format), true).catch(
      () => undefined,
    );
  }

  private async computeDelta(
    releaseId: number,
    target: string,
    base: string,
    format: DeltaFormat,
  ): Promise<string | undefined> {
    const { chunks } = this.store;
    const r = await this.store.releases.get(releaseId);
    const m = await this.manifest(releaseId);
    if (!r || !m || base === target) return undefined;
    const t = namedChunks(m).get(target);
    if (!t || !isLayerIndex(m, target)) return undefined;
    // The base must be a layer index of this app: a delta says which bytes two blobs share, so it is only
    // made against a blob the vessel may fetch anyway.
    const baseRaw = await this.indexRawSize(r.app, base);
    if (baseRaw === undefined || !(await chunks.has(base))) return undefined;
    const targetComp = await chunks.read(target);
    const raw = encodeIndexDeltaRaw(
      verifyCompressedChunk(base, await chunks.read(base), baseRaw),
      verifyCompressedChunk(target, targetComp, t.raw),
      format,
    );
    const digest = sha256hex(raw);
    if (!(await chunks.has(digest))) await chunks.put(digest, await compressBlob(raw, this.quality), raw.byteLength);
    const size = (await chunks.size(digest)) ?? Infinity;
    return size < targetComp.byteLength ? digest : undefined;
  }

  /** The raw size of a layer index of some release of `app`; undefined when it is none. */
  private async indexRawSize(app: string, digest: string): Promise<number | undefined> {
    for (const other of await this.store.releases.list({ app, limit: 200 })) {
      const om = await this.manifest(other.id);
      if (om && isLayerIndex(om, digest)) return namedChunks(om).get(digest)!.raw;
    }
    return undefined;
  }

  /**
   * The content chunks a layer index of a release of `app` lists (cached); undefined when it is not one,
   * or not in the store. `raw` is its signed raw size when the caller has it at hand.
   */
  indexChunks(app: string, digest: string, raw?: number): Promise<Set<string> | undefined> {
    // A few apps' worth of layers, each release against the ones planned before it; an index of 20,000
    // chunks is ~2 MB here.
    return cached(this.indexSets, `${app}:${digest}`, 128, async () => {
      raw ??= await this.indexRawSize(app, digest);
      if (raw === undefined || !(await this.store.chunks.has(digest))) return undefined;
      try {
        const ix = decodeLayerIndex(verifyCompressedChunk(digest, await this.store.chunks.read(digest), raw));
        return new Set(ix.chunks.map(([d]) => d));
      } catch (err) {
        if (!(err instanceof ChunkError || err instanceof LayerIndexError)) throw err;
        // Damaged in the store (checked against the signed digest, so never the publisher's fault): dropped,
        // so it is missing now and the next publish uploads it again.
        await this.store.chunks.remove(digest);
        return undefined;
      }
    });
  }
}

/**
 * `make()`'s answer under `key`, computed once while kept (the oldest entry goes past `max`). An error is
 * not kept, nor an undefined answer unless `keepUndefined` (not there yet: an index uploaded late).
 */
function cached<K, V>(
  cache: Map<K, Promise<V | undefined>>,
  key: K,
  max: number,
  make: () => Promise<V | undefined>,
  keepUndefined = false,
): Promise<V | undefined> {
  const hit = cache.get(key);
  if (hit) return hit;
  const p = make();
  // Only this entry: one evicted and made again meanwhile stays.
  const forget = () => {
    if (cache.get(key) === p) cache.delete(key);
  };
  p.then((v) => {
    if (v === undefined && !keepUndefined) forget();
  }, forget);
  if (cache.size >= max) cache.delete(cache.keys().next().value!);
  cache.set(key, p);
  return p;
}

function isLayerIndex(m: ReleaseManifest, digest: string): boolean {
  return layerIndexRefs(m).some(([d]) => d === digest);
}

const plans = new WeakMap<HubStore, PackPlans>();

/** The store's pack plans (one per store, so every route of a hub process shares the cache). */
export function packPlans(deps: Pick<HubDeps, 'store' | 'limits'>): PackPlans {
  const { store } = deps;
  let p = plans.get(store);
  if (!p) {
    p = new PackPlans(store, deps.limits.SOLID_BROTLI_QUALITY);
    plans.set(store, p);
  }
  return p;
}
