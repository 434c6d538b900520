import { indexRefs, namedChunks } from '../shared/content/release-chunks.js';
import { ChunkError, verifyCompressedChunk } from '../shared/content/chunk-store.js';
import { decodeLayerIndex, LayerIndexError } from '../shared/content/layer-index.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import type { HubChunkStore } from './store/hub-store.js';

/**
 * The content chunks the release's layer indexes list, in index order, each once; undefined when the
 * store lacks an index. An index found damaged (checked against the signed digest, so never the
 * publisher's fault) is dropped: it is missing now and gets uploaded again. The hub's async twin of
 * shared/content/release-chunks.ts, over the HubStore's chunk store.
 */
export async function contentChunkList(m: ReleaseManifest, chunks: HubChunkStore): Promise<string[] | undefined> {
  const out = new Set<string>();
  const seen = new Set<string>();
  for (const [digest, raw] of indexRefs(m)) {
    if (seen.has(digest)) continue;
    seen.add(digest);
    if (!(await chunks.has(digest))) return undefined;
    try {
      const ix = decodeLayerIndex(verifyCompressedChunk(digest, await chunks.read(digest), raw));
      for (const [d] of ix.chunks) out.add(d);
    } catch (err) {
      if (!(err instanceof ChunkError || err instanceof LayerIndexError)) throw err;
      await chunks.remove(digest);
      return undefined;
    }
  }
  return [...out];
}

/**
 * Every chunk of the release in the order a reader can check them: the named ones (configs, layer
 * indexes) first, then the content chunks in index order, each once. Undefined when a layer index is
 * not in the store.
 */
export async function releaseChunkOrder(m: ReleaseManifest, chunks: HubChunkStore): Promise<string[] | undefined> {
  const content = await contentChunkList(m, chunks);
  return content && [...new Set([...namedChunks(m).keys(), ...content])];
}
