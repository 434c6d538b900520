/**
 * Release transfer benchmark (issue 3): bytes a vessel holding v1 must download to get v2, for Tender and
 * the alternatives, measured in the same run on the image pair built by bench/transfer-build.sh:
 * full image (docker save | gzip), layer dedupe (v2's new layers, gzip: a registry pull), casync (new
 * chunks, default chunk size), zstd --patch-from (pairwise binary diff against the exact v1).
 * Then through the link simulator at 512 kbit/s and 700 ms round trip with real hub and agent processes:
 * round trips, wall time against bytes/bandwidth, and bytes received across 10 cuts.
 * Usage: bash bench/transfer-build.sh && npx tsx bench/transfer.ts
 */
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDockerEngine } from '../shared/docker.js';
import { createChunkStore } from '../shared/content/chunk-store.js';
import { canonicalBytes } from '../shared/trust/canonical-json.js';
import { chunkImage } from '../publisher/image-chunker.js';
import { imageChunks, machine } from './lib.js';
import { loadLayerIndex } from '../shared/content/release-chunks.js';
import { compressBlob, encodeIndexDeltaRaw, encodeSolidRaw, groupChunks } from '../shared/content/solid.js';

const W = process.env.TENDER_BENCH_DIR ?? '/var/tmp/tender-bench';
const out = join(W, 'out');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const sh = (cmd: string) =>
  execSync(cmd, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 30 })
    .toString()
    .trim();
const size = (p: string) => statSync(p).size;

const docker = createDockerEngine();
const image = process.env.TENDER_BENCH_IMAGE ?? 'tender-bench/portal';
const images = { v1: `${image}:v1`, v2: `${image}:v2` };
const info = { v1: (await docker.imageInspect(images.v1))!, v2: (await docker.imageInspect(images.v2))! };

// ---- Tender: chunk both images the way `tender release publish` does; count what v2 adds.
// The same cache `bench/transfer-link.ts` publishes from, started empty: the v1 figures are a fresh publish.
// TENDER_BENCH_CACHE names another pair's cache to start warm from (layers the pairs share are not
// compressed again); the publish figures are then not a cold publish's.
const cacheDir = process.env.TENDER_BENCH_CACHE ?? join(W, 'pubcache');
if (!process.env.TENDER_BENCH_CACHE) rmSync(cacheDir, { recursive: true, force: true });
const cache = createChunkStore(cacheDir);
const t0 = process.cpuUsage();
const w0 = Date.now();
const c1 = await chunkImage(docker, info.v1.id, info.v1.diffIds, cache);
const publishV1 = {
  cpuSeconds: (process.cpuUsage(t0).user + process.cpuUsage(t0).system) / 1e6,
  wallSeconds: (Date.now() - w0) / 1000,
};
const t2 = process.cpuUsage();
const w2 = Date.now();
const c2 = await chunkImage(docker, info.v2.id, info.v2.diffIds, cache);
const publishV2 = {
  cpuSeconds: (process.cpuUsage(t2).user + process.cpuUsage(t2).system) / 1e6,
  wallSeconds: (Date.now() - w2) / 1000,
};
const have = imageChunks({ [info.v1.id]: { refs: [images.v1], ...c1 } }, cache);
const all2 = imageChunks({ [info.v2.id]: { refs: [images.v2], ...c2 } }, cache);
const needed = new Map([...all2].filter(([d]) => !have.has(d)));
// What the pack carries per chunk: 36 bytes of entry header, then the compressed chunk.
const perChunkBytes = [...needed.values()].reduce((a, comp) => a + comp + 36, 0);
const indexBytes = c2.layers.filter((l) => needed.has(l.index![0])).reduce((a, l) => a + l.index![2] + 36, 0);
const manifestBytes = canonicalBytes({ images: { [info.v2.id]: { refs: [images.v2], ...c2 } } }).byteLength;

// ---- the hub's plan for (v1, v2), as hub/pack-plans.ts makes it: the content chunks v2 adds in solid
// groups, each changed layer index as a delta against the index of the same layer slot in v1.
const tp = process.cpuUsage();
const wp = Date.now();
const rawOf = (d: string) => cache.getRaw(d)!;
let solidBytes = 0;
let groupedPerChunk = 0;
let groupCount = 0;
const content2: [string, number][] = [];
for (const l of c2.layers)
  for (const [d, raw] of loadLayerIndex(cache, l.index!).chunks) if (needed.has(d)) content2.push([d, raw]);
const inGroups = new Set<string>();
for (const g of groupChunks(new Map(content2))) {
  const blob = await compressBlob(encodeSolidRaw(g.map(([d]) => ({ digest: d, raw: rawOf(d) }))));
  const one = g.reduce((a, [d]) => a + needed.get(d)! + 36, 0);
  if (blob.byteLength + 36 >= one) continue;
  solidBytes += blob.byteLength + 36;
  groupedPerChunk += one;
  groupCount++;
  for (const [d] of g) inGroups.add(d);
}
let deltaIndexes = 0;
let deltaIndexBytes = 0;
let deltaSaved = 0;
for (const [i, l] of c2.layers.entries()) {
  const old = c1.layers[i]?.index;
  if (!needed.has(l.index![0]) || !old) continue;
  deltaIndexes++;
  // Format 2, as the hub sends it to an agent that names it (solid.ts).
  const blob = await compressBlob(encodeIndexDeltaRaw(rawOf(old[0]), rawOf(l.index![0]), 2));
  const use = Math.min(blob.byteLength, l.index![2]);
  deltaIndexBytes += use + 36;
  deltaSaved += l.index![2] - use;
}
const plan = {
  cpuSeconds: (process.cpuUsage(tp).user + process.cpuUsage(tp).system) / 1e6,
  wallSeconds: (Date.now() - wp) / 1000,
};
const chunkBytes = perChunkBytes - groupedPerChunk + solidBytes - deltaSaved;
const tender = {
  newChunks: needed.size,
  totalChunks: all2.size,
  chunkBytes,
  perChunkBytes,
  solidGroups: groupCount,
  chunksInGroups: inGroups.size,
  solidBytes,
  groupedPerChunkBytes: groupedPerChunk,
  indexBytes,
  indexDeltas: deltaIndexes,
  indexDeltaBytes: deltaIndexBytes,
  manifestImagesBytes: manifestBytes,
  bytes: chunkBytes + manifestBytes,
  bytesPerChunkOnly: perChunkBytes + manifestBytes,
};

// ---- full image and layer dedupe
execFileSync('sh', ['-c', `docker save ${images.v1} > ${out}/v1.tar && docker save ${images.v2} > ${out}/v2.tar`]);
const full = Number(sh(`gzip -6 -c ${out}/v2.tar | wc -c`));
mkdirSync(join(out, 'x1'));
mkdirSync(join(out, 'x2'));
sh(`tar -C ${out}/x1 -xf ${out}/v1.tar && tar -C ${out}/x2 -xf ${out}/v2.tar`);
const layerFiles = (dir: string) =>
  (JSON.parse(sh(`cat ${dir}/manifest.json`)) as { Layers: string[] }[])[0]!.Layers.map((l) => join(dir, l));
const v1Layers = layerFiles(join(out, 'x1'));
const v2Layers = layerFiles(join(out, 'x2'));
const v1DiffIds = new Set(info.v1.diffIds);
const newLayers = v2Layers.filter((_, i) => !v1DiffIds.has(info.v2.diffIds[i]!));
const layerDedupe = newLayers.reduce((a, f) => a + Number(sh(`gzip -6 -c ${f} | wc -c`)), 0);

// ---- casync: default chunk size, new chunks only (stores are zstd-compressed chunk files)
const store1 = join(out, 'castore1');
const store2 = join(out, 'castore2');
v1Layers.forEach((f, i) => sh(`casync make --store=${store1} ${out}/v1-${i}.caibx ${f} >/dev/null`));
v2Layers.forEach((f, i) => sh(`casync make --store=${store2} ${out}/v2-${i}.caibx ${f} >/dev/null`));
const storeFiles = (dir: string) => {
  const m = new Map<string, number>();
  for (const sub of readdirSync(dir)) for (const f of readdirSync(join(dir, sub))) m.set(f, size(join(dir, sub, f)));
  return m;
};
const s1 = storeFiles(store1);
const casyncBytes = [...storeFiles(store2)].filter(([f]) => !s1.has(f)).reduce((a, [, n]) => a + n, 0);

// ---- zstd --patch-from against the exact v1
sh(`zstd -q -19 --long=28 --patch-from=${out}/v1.tar ${out}/v2.tar -o ${out}/patch.zst`);
const zstdPatch = size(join(out, 'patch.zst'));

const uncompressed = size(join(out, 'v2.tar'));
const result = {
  machine: machine(),
  image: { uncompressedBytes: uncompressed, layers: info.v2.diffIds.length, newLayers: newLayers.length },
  bytes: { tender: tender.bytes, full, layerDedupe, casync: casyncBytes, zstdPatchFrom: zstdPatch },
  ratios: {
    tenderVsCasync: tender.bytes / casyncBytes,
    tenderVsLayerDedupe: tender.bytes / layerDedupe,
    tenderVsZstdPatch: tender.bytes / zstdPatch,
  },
  tender,
  publishV1,
  publishV2,
  hubPlan: plan,
};
writeFileSync(join(W, 'transfer-bytes.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result, null, 2));
if (!existsSync(join(W, 'keep'))) rmSync(join(out), { recursive: true, force: true });
process.exit(0);
