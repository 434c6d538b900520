import { ChunkError, verifyCompressedChunk, type ChunkStore } from './chunk-store.js';
import { decodeLayerIndex, LayerIndexError, type LayerIndex } from './layer-index.js';
import type { ChunkRef, ReleaseManifest } from '../protocol/manifest.js';

/**
 * Every index blob the manifest names, in order: one per image layer, and the agent executable's. Each
 * lists content chunks (layer-index.ts); an executable's has an empty meta stream.
 */
/** The index of every image layer that has one (the agent executable's index left out). */
export function layerIndexRefs(m: ReleaseManifest): ChunkRef[] {
  return Object.values(m.images).flatMap((img) => img.layers.flatMap((l) => (l.index ? [l.index] : [])));
}

export function indexRefs(m: ReleaseManifest): ChunkRef[] {
  const out: ChunkRef[] = [];
  out.push(...layerIndexRefs(m));
  if (m.binary) out.push(m.binary.index);
  return out;
}

/**
 * The chunks a release is made of, in two tiers: the ones its signed manifest names directly (image
 * configs and layer index blobs), and the content chunks those indexes list. A vessel fetches the first
 * tier, then works out from the indexes which content it lacks.
 */
export function namedChunks(m: ReleaseManifest): Map<string, { raw: number; comp: number }> {
  const out = new Map<string, { raw: number; comp: number }>();
  const add = (c: ChunkRef) => out.set(c[0], { raw: c[1], comp: c[2] });
  for (const img of Object.values(m.images)) for (const c of img.config?.chunks ?? []) add(c);
  for (const ix of indexRefs(m)) add(ix);
  return out;
}

/** Read and verify a layer index from a chunk store (its digest and size come from the signed manifest). */
export function loadLayerIndex(store: ChunkStore, ref: ChunkRef): LayerIndex {
  return decodeLayerIndex(verifyCompressedChunk(ref[0], store.get(ref[0]), ref[1]));
}

/**
 * Content chunks (digest → raw size) listed by the release's layer indexes that `store` holds. Indexes
 * not in the store are skipped and reported, so callers decide whether that is an error.
 */
export function contentChunks(
  m: ReleaseManifest,
  store: ChunkStore,
): { chunks: Map<string, number>; missingIndexes: string[] } {
  const chunks = new Map<string, number>();
  const missingIndexes: string[] = [];
  const seen = new Set<string>();
  for (const ref of indexRefs(m)) {
    if (seen.has(ref[0])) continue;
    seen.add(ref[0]);
    let ix;
    try {
      ix = store.has(ref[0]) ? loadLayerIndex(store, ref) : undefined;
    } catch (err) {
      if (!(err instanceof ChunkError || err instanceof LayerIndexError)) throw err;
      // Damaged on disk (verification is against the signed digest, so this is never the publisher's
      // fault): drop it; it is missing now and gets fetched again.
      store.remove(ref[0]);
    }
    if (!ix) {
      missingIndexes.push(ref[0]);
      continue;
    }
    for (const [d, raw] of ix.chunks) chunks.set(d, raw);
  }
  return { chunks, missingIndexes };
}

/** Every chunk digest of the release that `store` can know about (named plus content). */
export function allReleaseChunks(m: ReleaseManifest, store: ChunkStore): Map<string, number> {
  const out = new Map<string, number>();
  for (const [d, s] of namedChunks(m)) out.set(d, s.raw);
  for (const [d, raw] of contentChunks(m, store).chunks) out.set(d, raw);
  return out;
}

/**
 * Every chunk of the release in the order a reader can check them: the named ones (configs, layer
 * indexes) first, then the content chunks in index order, each once. Undefined when a layer index is
 * not in `store` (the content cannot be listed without it).
 */
export function releaseChunkOrder(m: ReleaseManifest, store: ChunkStore): string[] | undefined {
  const content = contentChunks(m, store);
  if (content.missingIndexes.length) return undefined;
  return [...new Set([...namedChunks(m).keys(), ...content.chunks.keys()])];
}

const repoOf = (ref: string) => ref.replace(/@sha256:[0-9a-f]+$/, '').replace(/:[^/:]+$/, '');

/**
 * The layer index in each layer slot of a release (app, image name without its tag, layer position): a
 * vessel asks for a changed index as a delta against the one it holds in the same slot, and the hub
 * prepares those deltas for the releases its plans are made against.
 */
export function indexSlots(m: ReleaseManifest): Map<string, string> {
  const out = new Map<string, string>();
  for (const img of Object.values(m.images)) {
    const repos = [...new Set(img.refs.map(repoOf))];
    img.layers.forEach((l, i) => {
      if (!l.index) return;
      for (const r of repos) out.set(`${m.app}|${r}|${i}`, l.index[0]);
    });
  }
  return out;
}
