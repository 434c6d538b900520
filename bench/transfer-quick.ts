/**
 * Release transfer bytes, the quick form of bench/transfer.ts for a loaded machine: only the layers v2
 * changes are chunked and compressed (a cold publish of the whole image takes half an hour on 2 shared
 * cores). Layers with the same diff ID in v1 and v2 cost every method nothing and are left out, for
 * Tender and casync alike (a chunk of a new layer that also sits in an unchanged one counts as new for
 * both: conservative). zstd --patch-from gets v1's layers (in image order) as its reference, v2's new layers as
 * its input. Tender's side is what a vessel holding v1 downloads: solid groups of the new content
 * chunks, the changed layer indexes as deltas against v1's (format 2, tar-delta.ts; format 1's figure is
 * printed beside it), per-chunk entries for the rest, all at brotli 11 as the publisher and the hub make
 * them. `breakdown` says where Tender's bytes go, each kind with its 36-byte pack entry headers.
 * Usage: bash bench/transfer-build.sh && npx tsx bench/transfer-quick.ts
 */
import { createHash } from 'node:crypto';
import { execSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants } from 'node:zlib';
import { createDockerEngine } from '../shared/docker.js';
import { chunkAll } from '../shared/content/chunking.js';
import { encodeLayerIndex } from '../shared/content/layer-index.js';
import { TarSplitter } from '../shared/content/tar-split.js';
import { compressBlob, encodeIndexDeltaRaw, encodeSolidRaw, groupChunks } from '../shared/content/solid.js';
import { machine } from './lib.js';

const W = process.env.TENDER_BENCH_DIR ?? '/var/tmp/tender-bench';
const image = process.env.TENDER_BENCH_IMAGE ?? 'tender-bench/portal';
const out = join(W, 'quick');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const sh = (cmd: string) =>
  execSync(cmd, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 30 })
    .toString()
    .trim();
const size = (p: string) => statSync(p).size;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const brotli = promisify(brotliCompress);
const q11 = (b: Buffer, lgwin = 22) =>
  brotli(b, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: lgwin,
      [constants.BROTLI_PARAM_SIZE_HINT]: b.byteLength,
    },
  });
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const docker = createDockerEngine();
const info = { v1: (await docker.imageInspect(`${image}:v1`))!, v2: (await docker.imageInspect(`${image}:v2`))! };
sh(`docker save ${image}:v1 > ${out}/v1.tar && docker save ${image}:v2 > ${out}/v2.tar`);
for (const v of ['x1', 'x2']) mkdirSync(join(out, v));
sh(`tar -C ${out}/x1 -xf ${out}/v1.tar && tar -C ${out}/x2 -xf ${out}/v2.tar`);
const layerFiles = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[])[0]!.Layers.map((l) =>
    join(dir, l),
  );
const v1Layers = layerFiles(join(out, 'x1'));
const v2Layers = layerFiles(join(out, 'x2'));
const v1Diff = new Set(info.v1.diffIds);
const changed = v2Layers.map((_, i) => i).filter((i) => !v1Diff.has(info.v2.diffIds[i]!));
// v1's layers at the positions v2 changed: what the vessel holds of them.
const heldLayers = changed.filter((i) => v1Layers[i] && !new Set(info.v2.diffIds).has(info.v1.diffIds[i]!));

/** A layer split as the publisher does: its index blob and its content chunks. */
function split(file: string) {
  const meta: Buffer[] = [];
  const body: Buffer[] = [];
  const sp = new TarSplitter({ meta: (b) => meta.push(Buffer.from(b)), content: (b) => body.push(Buffer.from(b)) });
  sp.push(readFileSync(file));
  sp.end();
  const content = chunkAll(Buffer.concat(body));
  const index = encodeLayerIndex({
    meta: Buffer.concat(meta),
    contentSize: content.reduce((a, c) => a + c.data.byteLength, 0),
    chunks: content.map((c) => [c.digest, c.data.byteLength]),
  });
  return { index, content };
}

// ---- Tender
const c0 = cpu();
const w0 = Date.now();
const held = new Map<number, ReturnType<typeof split>>();
for (const i of heldLayers) held.set(i, split(v1Layers[i]!));
const heldDigests = new Set([...held.values()].flatMap((l) => [sha(l.index), ...l.content.map((c) => c.digest)]));
const raw = new Map<string, Buffer>();
const newContent: [string, number][] = [];
const indexes: { i: number; blob: Buffer }[] = [];
for (const i of changed) {
  const l = split(v2Layers[i]!);
  indexes.push({ i, blob: l.index });
  for (const c of l.content) {
    if (heldDigests.has(c.digest) || raw.has(c.digest)) continue;
    raw.set(c.digest, c.data);
    newContent.push([c.digest, c.data.byteLength]);
  }
}
// Per chunk, as the publisher stores them (and today's packs carry them).
const comp = new Map<string, number>();
for (const [d, r] of raw) comp.set(d, (await q11(r)).byteLength);
const indexComp = await Promise.all(indexes.map(async (x) => (await q11(x.blob, 24)).byteLength));
const publishCpu = cpu() - c0;
const publishWall = (Date.now() - w0) / 1000;
const perChunk = [...comp.values()].reduce((a, n) => a + n + 36, 0) + indexComp.reduce((a, n) => a + n + 36, 0);

// The hub's plan for (v1, v2).
const c1 = cpu();
const w1 = Date.now();
let solidBytes = 0;
let grouped = 0;
let groups = 0;
for (const g of groupChunks(newContent)) {
  const blob = await compressBlob(encodeSolidRaw(g.map(([d]) => ({ digest: d, raw: raw.get(d)! }))));
  const one = g.reduce((a, [d]) => a + comp.get(d)! + 36, 0);
  if (blob.byteLength + 36 >= one) continue;
  solidBytes += blob.byteLength + 36;
  grouped += one;
  groups++;
}
let indexBytes = 0;
let indexBytesFormat1 = 0;
let wholeIndexBytes = 0;
let deltas = 0;
for (const [k, x] of indexes.entries()) {
  const base = held.get(x.i)?.index;
  const whole = indexComp[k]!;
  // What the hub sends: the delta when smaller than the whole index (as hub/pack-plans.ts decides).
  const sent = async (format: 1 | 2) =>
    base ? Math.min(whole, (await compressBlob(encodeIndexDeltaRaw(base, x.blob, format))).byteLength) : whole;
  const n = await sent(2);
  indexBytesFormat1 += (await sent(1)) + 36;
  if (n < whole) deltas++;
  else wholeIndexBytes += n + 36;
  indexBytes += n + 36;
}
const planCpu = cpu() - c1;
const planWall = (Date.now() - w1) / 1000;
const contentPerChunk = [...comp.values()].reduce((a, n) => a + n + 36, 0);
// The image config travels as a chunk of its own either way.
const configFile = (JSON.parse(readFileSync(join(out, 'x2', 'manifest.json'), 'utf8')) as { Config: string }[])[0]!
  .Config;
const configBytes = (await q11(readFileSync(join(out, 'x2', configFile)))).byteLength + 36;
const tender = contentPerChunk - grouped + solidBytes + indexBytes + configBytes;

// ---- layer dedupe: v2's new layers, gzip -6 (a registry pull)
const newLayerFiles = changed.map((i) => v2Layers[i]!);
const layerDedupe = newLayerFiles.reduce((a, f) => a + Number(sh(`gzip -6 -c ${f} | wc -c`)), 0);

// ---- casync: v1's layers at the changed positions as the store held, v2's new layers' new chunks
const store1 = join(out, 'castore1');
const store2 = join(out, 'castore2');
mkdirSync(store1);
heldLayers.forEach((i) => sh(`casync make --store=${store1} ${out}/v1-${i}.caibx ${v1Layers[i]} >/dev/null`));
changed.forEach((i) => sh(`casync make --store=${store2} ${out}/v2-${i}.caibx ${v2Layers[i]} >/dev/null`));
const storeFiles = (dir: string) => {
  const m = new Map<string, number>();
  for (const sub of readdirSync(dir)) for (const f of readdirSync(join(dir, sub))) m.set(f, size(join(dir, sub, f)));
  return m;
};
const s1 = storeFiles(store1);
const casync = [...storeFiles(store2)].filter(([f]) => !s1.has(f)).reduce((a, [, n]) => a + n, 0);

// ---- zstd --patch-from: v1's layers as reference, in image order (base first, app last), v2's new
// layers as input. Not `docker save`'s tar: it lays the layer folders out in ID order, effectively at
// random, and zstd finds little of v1's app layer when the 217 MB base follows it (3.7x the bytes on
// pair 1 in one such order): the fair pairwise diff has the most similar content nearest.
sh(`cat ${v1Layers.join(' ')} > ${out}/v1-layers.tar`);
sh(`cat ${newLayerFiles.join(' ')} > ${out}/v2-new.tar`);
sh(`zstd -q -19 --long=29 --patch-from=${out}/v1-layers.tar ${out}/v2-new.tar -o ${out}/patch.zst`);
const zstdPatch = size(join(out, 'patch.zst'));

const result = {
  machine: machine(),
  image,
  layers: { v2: v2Layers.length, changed: changed.length, newContentChunks: newContent.length },
  newRawBytes: [...raw.values()].reduce((a, b) => a + b.byteLength, 0),
  bytes: { tender, tenderPerChunk: perChunk + configBytes, layerDedupe, casync, zstdPatchFrom: zstdPatch },
  ratios: {
    tenderVsZstdPatch: tender / zstdPatch,
    tenderVsCasync: tender / casync,
    tenderVsLayerDedupe: tender / layerDedupe,
    perChunkVsZstdPatch: (perChunk + configBytes) / zstdPatch,
  },
  tender: { solidGroups: groups, solidBytes, groupedPerChunkBytes: grouped, indexBytes, indexDeltas: deltas },
  breakdown: {
    solidGroups: solidBytes,
    perChunkContent: contentPerChunk - grouped,
    indexDeltas: indexBytes - wholeIndexBytes,
    wholeIndexes: wholeIndexBytes,
    imageConfig: configBytes,
    indexesWithFormat1Deltas: indexBytesFormat1,
    tenderWithFormat1Deltas: tender - indexBytes + indexBytesFormat1,
  },
  cost: {
    publishNewContent: { cpuSeconds: publishCpu, wallSeconds: publishWall },
    hubPlan: { cpuSeconds: planCpu, wallSeconds: planWall },
  },
};
writeFileSync(join(W, 'transfer-quick.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result, null, 2));
rmSync(out, { recursive: true, force: true });
process.exit(0);
