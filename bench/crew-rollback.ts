/**
 * Crew rollback as the crew lives it (issue 19): real hub, router and agent processes, the real Docker
 * engine, a health gate written for a cold start (20 s) and a 10 s drain. Each run: a release that exits
 * 3 s after start goes live, the watch window rolls it back by itself, the hub is stopped, and in the drain
 * of that automatic rollback the crew runs `tender rollback`. Measured: from the command to the release
 * before answering through the router. Baseline in the same run: the same rollback with the agent idle
 * (nothing to preempt). Both with the machine as it is, then loaded: a CPU hog on each core and a loop of
 * image imports (a build) on the same engine.
 * Usage: npx tsx bench/crew-rollback.ts [runs=5]   (CREW_BENCH_SERIES=idle|loaded for one series only;
 * each run is printed on stderr as it ends)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxImage, removeAppContainers } from '../test/helpers/images.js';
import { enrolVessel, freePort, getBody, publishAndRollout, startShore } from '../test/helpers/fleet.js';
import { eventually, tender } from '../test/helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../test/helpers/cleanup.js';
import { unique } from '../test/helpers/names.js';
import { machine, median } from './lib.js';
import { withRunCa } from './run-ca.js';

// The shore serves HTTPS from a CA made for this run (bench/run-ca.ts).
await withRunCa();

const RUNS = Number(process.argv[2] ?? 5);
const APP = unique('crewbench');
const REPO = `tender-bench/${APP}`;

useFileScope();
removeAppContainers(APP);
buildBusyboxImage({ tag: `${REPO}:v1`, body: 'portal v1\n' });
buildBusyboxImage({ tag: `${REPO}:v2`, body: 'portal v2\n' });
const shore = await startShore();
const hubListen = `127.0.0.1:${new URL(shore.url).port}`;
const vessel = await enrolVessel(shore, unique('bench-'), { watchSeconds: 30 });
const port = await freePort();
await vessel.startRouter();
vessel.startAgent();
let seq = 0;

function compose(img: string): string {
  const file = join(shore.dir, `${img}.yml`);
  writeFileSync(
    file,
    `name: ${APP}
services:
  portal:
    image: ${REPO}:${img}
    ports: ["${port}:8080"]
    x-tender:
      health: { http: /health, timeout: 20s, successes: 1 }
      drain: 10s
`,
  );
  return file;
}

async function publish(img: string): Promise<string> {
  const version = `${++seq}.0.0`;
  await publishAndRollout(shore, compose(img), version);
  return version;
}

const serving = async (body: string, ms = 60_000) => eventually(async () => (await getBody(port)) === body, ms, 20);

await publish('v1');
await serving('portal v1');
await publish('v2');
await serving('portal v2');
await eventually(async () => (await vessel.status()).lastUpdate?.state === 'done', 60_000);

/** Time from `tender rollback` to BODY answering through the router. */
async function timeRollback(want: string): Promise<{ ms: number; cutShort: string | null }> {
  const t0 = Date.now();
  const p = tender(['rollback', '--config', vessel.config, '--json'], {}, 120_000);
  await serving(want, 120_000);
  const ms = Date.now() - t0;
  const r = await p;
  if (r.code !== 0) throw new Error(`tender rollback failed: ${r.stderr}`);
  return { ms, cutShort: JSON.parse(r.stdout).cutShort };
}

/** One preempted run: crash release live, automatic rollback to what served, crew rollback in its drain. */
async function preemptedRun(): Promise<{ ms: number; cutShort: string | null }> {
  const live = await getBody(port);
  const other = live === 'portal v1' ? 'portal v2' : 'portal v1';
  await tender(['resume', '--config', vessel.config]);
  const crashTag = `crash${seq + 1}`;
  buildBusyboxImage({
    tag: `${REPO}:${crashTag}`,
    body: 'portal crash\n',
    cmd: ['/bin/sh', '-c', 'httpd -p 8080 -h /www; sleep 3; exit 3'],
  });
  await publish(crashTag);
  await serving('portal crash', 180_000);
  await shore.hub.stop();
  await serving(live, 180_000);
  const r = await timeRollback(other);
  await shore.start(hubListen);
  // Let the tidy-up (drain, stop) end before the next run.
  await eventually(async () => (await vessel.status()).lastUpdate?.state !== 'running', 60_000);
  return r;
}

/** Baseline: the agent idle, nothing to preempt. */
async function idleRun(): Promise<number> {
  const live = await getBody(port);
  const other = live === 'portal v1' ? 'portal v2' : 'portal v1';
  await eventually(async () => (await vessel.status()).lastUpdate?.state !== 'running', 60_000);
  const r = await timeRollback(other);
  await eventually(async () => (await vessel.status()).lastUpdate?.state !== 'running', 60_000);
  return r.ms;
}

function startLoad(): () => void {
  const procs: ChildProcess[] = [];
  for (let i = 0; i < cpus().length; i++) procs.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  // A build on the same engine: import a busybox image over and over.
  let building = true;
  void (async () => {
    for (let i = 0; building; i++) {
      try {
        buildBusyboxImage({ tag: `${REPO}:load`, body: `load ${i}\n` });
      } catch {
        /* keep loading */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return () => {
    building = false;
    for (const p of procs) p.kill('SIGKILL');
  };
}

async function series(label: string) {
  const load0 = loadavg()[0]!;
  const preempted: number[] = [];
  const idle: number[] = [];
  const cut: (string | null)[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await preemptedRun();
    preempted.push(r.ms);
    cut.push(r.cutShort);
    idle.push(await idleRun());
    // Each run as it ends: a bench cut short still leaves its figures.
    console.error(
      JSON.stringify({
        label,
        run: i + 1,
        preemptedMs: r.ms,
        idleAgentMs: idle.at(-1),
        cutShort: r.cutShort,
        load: loadavg()[0],
      }),
    );
  }
  const m = median(preempted);
  return {
    label,
    loadAverage: { start: load0, end: loadavg()[0]! },
    preemptedMs: { runs: preempted, median: m, ratioToGoal5s: m / 5000 },
    idleAgentMs: { runs: idle, median: median(idle) },
    ratioToIdleAgent: m / median(idle),
    cutShort: [...new Set(cut)],
  };
}

const only = process.env.CREW_BENCH_SERIES;
const results = only === 'loaded' ? [] : [await series('machine as it is')];
if (only !== 'idle') {
  const stop = startLoad();
  try {
    results.push(await series('loaded: a CPU hog per core and image imports on the engine'));
  } finally {
    stop();
  }
}

await runDeferredCleanup();
removeAppContainers(APP);
for (const tag of execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', REPO])
  .toString()
  .split('\n')
  .filter(Boolean))
  try {
    execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
  } catch {
    /* gone */
  }
console.log(JSON.stringify({ machine: machine(), at: new Date().toISOString(), runs: RUNS, results }, null, 2));
process.exit(0);
