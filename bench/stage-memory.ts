/**
 * Where the vessel's memory goes while it stages a release: the same stageRelease the agent runs, on the
 * chunks of bench/transfer-build.sh's image, with `docker load` replaced by a sink that reads at the
 * engine's pace (the image is already in this machine's engine). Peak RSS after loading the modules,
 * after every layer is reassembled and verified, and after the docker-save stream has been read; the
 * same for a bare `node` and for node with tsx (the development launcher the other benches run).
 * Usage: npx tsx bench/stage-memory.ts [IMAGE]   (after bench/transfer-build.sh; IMAGE defaults to v1)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { median, machine } from './lib.js';
import { withRunCa } from './run-ca.js';

// The shore serves HTTPS from a CA made for this run (bench/run-ca.ts).
await withRunCa();

const W = process.env.TENDER_BENCH_DIR ?? '/var/tmp/tender-bench';
const cache = join(W, 'pubcache');
const peakMB = () => Math.round(process.resourceUsage().maxRSS / 1024);

if (process.argv[2] === '--stage') {
  // The child: stage one manifest, report peak RSS per phase as one JSON line.
  const { readEnvelope } = await import('../shared/trust/envelope.js');
  const { createChunkStore } = await import('../shared/content/chunk-store.js');
  const { stageRelease } = await import('../agent/release/stage.js');
  const manifest = JSON.parse(
    Buffer.from(readEnvelope(readFileSync(process.argv[3]!), 64 * 1024 * 1024).payload, 'base64').toString(),
  );
  const phases: Record<string, number> = { modules: peakMB() };
  let loaded = false;
  const engine = {
    async imageInspect() {
      return loaded ? { id: 'loaded' } : undefined;
    },
    async loadImage(tar: Readable) {
      phases.verified = peakMB();
      await pipeline(tar, new Writable({ highWaterMark: 64 * 1024, write: (_c, _e, cb) => setImmediate(cb) }));
      phases.streamed = peakMB();
      loaded = true;
    },
  };
  await stageRelease(engine as never, manifest, createChunkStore(cache));
  console.log(JSON.stringify({ ...phases, heapMB: Math.round(process.memoryUsage().heapUsed / 1048576) }));
  process.exit(0);
}

const { startShore, composeFile } = await import('../test/helpers/fleet.js');
const { tender } = await import('../test/helpers/proc.js');
const { runDeferredCleanup, useFileScope } = await import('../test/helpers/cleanup.js');
useFileScope();
const image = process.argv[2] ?? 'tender-bench/portal:v1';
const shore = await startShore();
const out = join(shore.dir, 'release.json');
const pub = await tender(
  [
    'release',
    'publish',
    '--compose',
    composeFile(shore.dir, 'm', image, 18481, 'bench'),
    '--key',
    shore.releaseKey,
    '--version',
    'm',
    '--cache',
    cache,
    '--out',
    out,
    '--json',
  ],
  shore.env,
  30 * 60_000,
);
if (pub.code !== 0) throw new Error(pub.stderr);

const self = fileURLToPath(import.meta.url);
const run = (args: string[]) => {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
};
const RUNS = 5;
const stages = Array.from({ length: RUNS }, () =>
  JSON.parse(run(['--import', 'tsx', self, '--stage', out]).trim().split('\n').pop()!),
);
const bare = Array.from({ length: RUNS }, () =>
  Number(run(['-e', 'console.log(process.resourceUsage().maxRSS / 1024)'])),
);
const withTsx = Array.from({ length: RUNS }, () =>
  Number(run(['--import', 'tsx', '-e', 'console.log(process.resourceUsage().maxRSS / 1024)'])),
);
const med = (k: string) => median(stages.map((s) => s[k]));
console.log(
  JSON.stringify(
    {
      machine: machine(),
      image,
      runs: RUNS,
      peakRssMB: {
        bareNode: Math.round(median(bare)),
        nodeWithTsx: Math.round(median(withTsx)),
        modulesLoaded: med('modules'),
        afterVerify: med('verified'),
        afterStream: med('streamed'),
      },
      heapUsedMB: med('heapMB'),
    },
    null,
    2,
  ),
);
await runDeferredCleanup();
