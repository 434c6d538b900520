/**
 * The v1 → v2 update of bench/transfer-build.sh's image pair through the link simulator, with real hub,
 * router and agent processes: round trips, wall time against the ideal (bytes / bandwidth) at 512 kbit/s
 * and 700 ms round trip, the agent's peak memory while staging; then bytes received across 10 cuts
 * against the bytes needed. The vessel holds v1 (its chunks are on board) before v2 is rolled out.
 * The hub serves HTTPS with a certificate of a CA made for the run (bench/run-ca.ts) and the vessels pin
 * that CA, as a fleet runs; the link simulator is TCP-level, so TLS passes through it and its handshakes,
 * record headers and tags count on the wire (counted apart from the record headers: `tls` in the output).
 * The ideal stays the bytes the release needs over the bandwidth. `--plain` measures plain http:// instead.
 * On an error or SIGINT/SIGTERM it stops the processes it started and removes the app's containers.
 * Usage: npx tsx bench/transfer-link.ts [--plain]   (after bench/transfer-build.sh; TENDER_BENCH_DIR and
 * TENDER_BENCH_IMAGE as for bench/transfer-quick.ts)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { composeFile, enrolVessel, freePort, startShore, type Shore, type Vessel } from '../test/helpers/fleet.js';
import { eventually, tender } from '../test/helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../test/helpers/cleanup.js';
import { removeAppContainers } from '../test/helpers/images.js';
import { LinkSim } from '../test/link-sim.js';
import { readEnvelope } from '../shared/trust/envelope.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import { imageChunks, machine } from './lib.js';
import { createChunkStore } from '../shared/content/chunk-store.js';
import { unique } from '../test/helpers/names.js';
import { withRunCa } from './run-ca.js';
import { TlsRecordCounter } from './tls-records.js';
import { recordIndexes } from '../agent/release/transfer/index-bases.js';

const APP = unique('bench');
const W = process.env.TENDER_BENCH_DIR ?? '/var/tmp/tender-bench';
// Another repository for the same pair: its v2 must have an image ID of its own (see removeV2).
const IMAGE = process.env.TENDER_BENCH_IMAGE ?? 'tender-bench/portal';
const RATE = 512_000 / 8;
const ONE_WAY_MS = 350;
const PLAIN = process.argv.includes('--plain');
if (!PLAIN) await withRunCa();
useFileScope();

// Everything the bench starts is stopped here, on success, on an error and on a signal: the hub, router
// and agent processes (deferred cleanup), the links, and the app's containers.
const links: LinkSim[] = [];
let cleaned: Promise<void> | undefined;
// The bench removes v2's image so the vessels must fetch it, and the cut run's vessel is stopped before
// it loads it: a copy saved first is loaded back at the end, so the next run finds its input.
const V2_IMAGE = `${IMAGE}:v2`;
const keep = mkdtempSync(join(tmpdir(), 'tender-bench-v2-'));
execFileSync('docker', ['save', V2_IMAGE, '-o', join(keep, 'v2.tar')]);
function cleanUp(): Promise<void> {
  cleaned ??= (async () => {
    for (const l of links) await l.close();
    await runDeferredCleanup();
    removeAppContainers(APP);
    if (spawnSync('docker', ['image', 'inspect', V2_IMAGE], { stdio: 'ignore' }).status !== 0)
      execFileSync('docker', ['load', '-i', join(keep, 'v2.tar')], { stdio: 'ignore' });
    rmSync(keep, { recursive: true, force: true });
  })();
  return cleaned;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => void cleanUp().finally(() => process.exit(130)));
try {
  await bench();
} catch (err) {
  console.error(err);
  await cleanUp();
  process.exit(1);
}
await cleanUp();
process.exit(0);

async function bench(): Promise<void> {
  const shore = await startShore({ tls: !PLAIN });
  const cache = join(W, 'pubcache');
  function timed(v: string): { cpuSeconds: number; peakRssMB: number; wallSeconds: number; uploadedBytes: number } {
    const t0 = Date.now();
    const file = composeFile(shore.dir, v, `${IMAGE}:${v}`, 18480, APP);
    const r = spawnSync(
      '/usr/bin/time',
      [
        '-v',
        process.execPath,
        'bin/tender.js',
        'release',
        'publish',
        '--compose',
        file,
        '--key',
        shore.releaseKey,
        '--version',
        v,
        '--cache',
        cache,
        '--out',
        join(shore.dir, `${v}.json`),
        '--json',
      ],
      {
        env: { ...process.env, ...shore.env },
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      },
    );
    const { stderr, stdout } = r;
    if (r.status !== 0)
      throw new Error(
        `publish ${v} failed: ${stderr
          .split('\n')
          .filter((l) => !/^\s/.test(l))
          .slice(-3)
          .join(' | ')}`,
      );
    const num = (re: RegExp) => Number(re.exec(stderr)?.[1] ?? NaN);
    return {
      cpuSeconds: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
      peakRssMB: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024,
      wallSeconds: (Date.now() - t0) / 1000,
      uploadedBytes: JSON.parse(stdout).uploadedBytes,
    };
  }

  const pub1 = timed('v1');
  const pub2 = timed('v2');
  // The hub computes the solid groups of (v1, v2) at publish; a publish waits 15 s for them, the rest is
  // background work. Rollouts come later than that in life: the bench lets the hub go idle first.
  const planWaitSeconds = await hubIdle(shore.hub.proc.pid!);
  const manifest = (v: string) =>
    JSON.parse(
      Buffer.from(
        readEnvelope(readFileSync(join(shore.dir, `${v}.json`)), 64 * 1024 * 1024).payload,
        'base64',
      ).toString(),
    ) as ReleaseManifest;
  const store = createChunkStore(cache);
  const v1 = manifest('v1');
  const v2 = manifest('v2');
  const v1Chunks = imageChunks(v1.images, store);
  const needed = new Map([...imageChunks(v2.images, store)].filter(([d]) => !v1Chunks.has(d)));
  const neededBytes = [...needed.values()].reduce((a, n) => a + n + 36, 0);
  const manifestBytes = readFileSync(join(shore.dir, 'v2.json')).byteLength;

  /** Wait until the process has used under 50 ms of CPU in each of 3 consecutive seconds; the seconds waited. */
  async function hubIdle(pid: number): Promise<number> {
    const t0 = Date.now();
    const cpu = () => {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    let quiet = 0;
    let last = cpu();
    while (quiet < 3 && Date.now() - t0 < 10 * 60_000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = cpu();
      quiet = now - last < 5 ? quiet + 1 : 0;
      last = now;
    }
    return (Date.now() - t0) / 1000;
  }

  async function vesselHoldingV1(name: string, link: LinkSim): Promise<{ vessel: Vessel; port: number }> {
    removeAppContainers(APP);
    const vessel = await enrolVessel(shore, name, { watchSeconds: 0, hub: shore.via(link.port) });
    // v1 arrived earlier: its chunks are on board, and its layer indexes are recorded as the ones held
    // (as a transfer of v1 leaves them), so v2's changed index is asked for as a delta against v1's. The
    // v1 rollout below finds v1's image in the engine and transfers nothing, so it would not record them.
    for (const d of v1Chunks.keys()) {
      const to = join(vessel.dataDir, 'chunks', d.slice(0, 2), d);
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(join(cache, d.slice(0, 2), d), to);
    }
    mkdirSync(join(vessel.dataDir, 'fetch'), { recursive: true });
    recordIndexes(join(vessel.dataDir, 'fetch'), v1);
    const port = await freePort();
    await vessel.startRouter();
    vessel.startAgent();
    return { vessel, port };
  }

  async function update(shoreRef: Shore, vessel: Vessel, version: string) {
    const t0 = Date.now();
    expect0(await tender(['rollout', 'start', `${APP}@${version}`, '--target', `vessel:${vessel.name}`], shoreRef.env));
    const line = await vessel.agent!.waitFor((l) => l.includes('release chunks on board'), 10 * 60_000);
    const seconds = (Date.now() - t0) / 1000;
    return { seconds, stats: JSON.parse(line) as { requests: number; bytesReceived: number; seconds: number } };
  }
  /**
   * Take v2's image out of the engine so the vessel must fetch it. The agent looks for an image by its
   * ID, so the ID must be gone, not just the tag: another tag of it (another bench's copy of the pair)
   * would make the update transfer nothing and the bench wait out its timeout.
   */
  function removeV2(m: ReleaseManifest): void {
    execFileSync('docker', ['rmi', '-f', V2_IMAGE], { stdio: 'ignore' });
    for (const id of Object.keys(m.images)) {
      const r = spawnSync('docker', ['image', 'inspect', id, '--format', '{{json .RepoTags}}'], { encoding: 'utf8' });
      if (r.status === 0)
        throw new Error(
          `v2's image ${id.slice(7, 19)} is still in the engine as ${r.stdout.trim()}: the vessel would not fetch it`,
        );
    }
  }
  function since<T extends object>(now: T, then: T): T {
    return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (then as Record<string, number>)[k]!])) as T;
  }
  function expect0(r: { code: number; stderr: string }) {
    if (r.code !== 0) throw new Error(r.stderr);
  }

  // 1. timing at 512 kbit/s, 700 ms RTT
  const records = { up: new TlsRecordCounter(), down: new TlsRecordCounter() };
  const link = new LinkSim(
    { host: '127.0.0.1', port: Number(new URL(shore.url).port) },
    { latencyMs: ONE_WAY_MS, bytesPerSecond: RATE, observe: (dir, conn, piece) => records[dir].feed(conn, piece) },
  );
  links.push(link);
  await link.start();
  const a = await vesselHoldingV1('bench-a', link);
  expect0(await tender(['rollout', 'start', `${APP}@v1`, '--target', 'vessel:bench-a'], shore.env));
  await eventually(async () => (await a.vessel.status()).release.current === 'v1', 120_000, 500);
  removeV2(v2);
  const down0 = link.stats.down;
  const up0 = link.stats.up;
  const conns0 = link.stats.connections;
  // The update's share of TLS: from here on, so v1's rollout is left out (a connection may carry both).
  const records0 = { up: { ...records.up.totals }, down: { ...records.down.totals } };
  const timing = await update(shore, a.vessel, 'v2');
  // What the packs carried (solid groups, index deltas, chunks): the bytes the link had to move.
  const packBytes = timing.stats.bytesReceived;
  await eventually(async () => (await a.vessel.status()).release.current === 'v2', 10 * 60_000, 1000);
  const agentPid = a.vessel.agent!.proc.pid!;
  const vmHwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${agentPid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const wire = link.stats.down - down0;
  const wireUp = link.stats.up - up0;
  await a.vessel.agent!.stop();
  await a.vessel.router!.stop();
  await link.close();

  // 2. bytes across 10 cuts (no rate cap: this measures bytes, not time). The first vessel's containers go
  // first: an image a container still uses survives `docker rmi` untagged, and the vessel would not fetch.
  removeAppContainers(APP);
  removeV2(v2);
  const cutLink = new LinkSim(
    { host: '127.0.0.1', port: Number(new URL(shore.url).port) },
    { cutAfterBytes: Math.ceil(neededBytes / 11) },
  );
  links.push(cutLink);
  await cutLink.start();
  const b = await vesselHoldingV1('bench-b', cutLink);
  cutLink.options.cutAfterBytes = 0;
  expect0(await tender(['rollout', 'start', `${APP}@v1`, '--target', 'vessel:bench-b'], shore.env));
  await eventually(async () => (await b.vessel.status()).release.current === 'v1', 120_000, 500);
  const cutDown0 = cutLink.stats.down;
  const hubLine0 = shore.hub.lines.length;
  const cuts0 = cutLink.stats.cuts;
  cutLink.options.cutAfterBytes = Math.ceil(neededBytes / 11);
  const cutRun = await update(shore, b.vessel, 'v2');
  const cutWire = cutLink.stats.down - cutDown0;
  // What the vessel asked the hub for during the cut run, by route: where the wire bytes went.
  const routes: Record<string, number> = {};
  for (const line of shore.hub.lines.slice(hubLine0)) {
    try {
      const j = JSON.parse(line) as { msg?: string; req?: { method: string; url: string } };
      if (j.msg !== 'incoming request' || !j.req) continue;
      const key = `${j.req.method} ${j.req.url
        .replace(/\/vessels\/[^/]+/, '/vessels/:name')
        .replace(/\/packs\/[0-9a-f]{32}/, '/packs/:id')
        .replace(/\?.*$/, '')}`;
      routes[key] = (routes[key] ?? 0) + 1;
    } catch {
      // not a log line
    }
  }
  await cutLink.close();

  const result = {
    machine: machine(),
    tls: !PLAIN,
    link: { bytesPerSecond: RATE, roundTripMs: ONE_WAY_MS * 2 },
    neededBytes: packBytes,
    perChunkBytes: neededBytes,
    planWaitSeconds,
    newChunks: needed.size,
    manifestBytes,
    publishWithWarmCache: { v1: pub1, v2: pub2 },
    update: {
      requests: timing.stats.requests,
      newConnections: link.stats.connections - conns0,
      transferSeconds: timing.stats.seconds,
      rolloutToOnBoardSeconds: timing.seconds,
      idealSeconds: packBytes / RATE,
      ratioToIdeal: timing.stats.seconds / (packBytes / RATE),
      wireBytesDown: wire,
      wireBytesUp: wireUp,
      wireRatioToNeeded: wire / packBytes,
      agentPeakRssMB: vmHwm,
      tlsRecords: PLAIN
        ? undefined
        : { down: since(records.down.totals, records0.down), up: since(records.up.totals, records0.up) },
    },
    cuts: {
      requestsByRoute: routes,
      cuts: cutLink.stats.cuts - cuts0,
      bytesReceived: cutRun.stats.bytesReceived,
      wireBytesDown: cutWire,
      ratioToNeeded: cutRun.stats.bytesReceived / packBytes,
    },
  };
  writeFileSync(join(W, PLAIN ? 'transfer-link-plain.json' : 'transfer-link.json'), JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
}
