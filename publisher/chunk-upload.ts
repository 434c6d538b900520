import type { ChunkStore } from '../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import { encodeUploadPack, UPLOAD_ENTRY_HEADER_BYTES } from '../shared/protocol/pack.js';
import { MEDIA } from '../shared/protocol/http.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { opsCall, type HubTarget } from '../shared/ops-client.js';
import { allReleaseChunks } from '../shared/content/release-chunks.js';

// One upload request carries up to this much: a handful of requests per publish, each small enough to
// retry whole over a shore office's uplink.
const UPLOAD_PACK_BYTES = 16 * 1024 * 1024;

/**
 * Ask the hub which of the release's chunks it lacks (one request) and upload only those, in large packs.
 * Publishing the same images again uploads nothing but the question.
 */
export async function uploadMissingChunks(
  target: HubTarget,
  m: ReleaseManifest,
  cache: ChunkStore,
  progress: (done: number, total: number) => void = () => {},
): Promise<{ chunks: number; missing: number; uploadedBytes: number; requests: number }> {
  const all = allReleaseChunks(m, cache);
  const { missing } = await opsCall(target, ROUTES.chunksMissing, paths.chunksMissing(), { digests: [...all.keys()] });
  // What the packs will weigh: each entry is its compressed bytes behind its header.
  const total = missing.reduce((a, d) => a + cache.size(d) + UPLOAD_ENTRY_HEADER_BYTES, 0);
  let uploaded = 0;
  let requests = 1;
  let pack: { digest: string; rawSize: number; compressed: Buffer }[] = [];
  let packBytes = 0;
  const send = async () => {
    if (pack.length === 0) return;
    const body = encodeUploadPack(pack);
    await opsCall(target, ROUTES.uploadChunks, paths.chunks(), undefined, { raw: body, contentType: MEDIA.uploadPack });
    requests++;
    uploaded += body.byteLength;
    progress(uploaded, total);
    pack = [];
    packBytes = 0;
  };
  for (const d of missing) {
    const compressed = cache.get(d);
    pack.push({ digest: d, rawSize: all.get(d)!, compressed });
    packBytes += compressed.byteLength + UPLOAD_ENTRY_HEADER_BYTES;
    if (packBytes >= UPLOAD_PACK_BYTES) await send();
  }
  await send();
  return { chunks: all.size, missing: missing.length, uploadedBytes: uploaded, requests };
}
