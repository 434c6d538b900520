/**
 * One hub at fleet scale (issue 12): N simulated vessels (default 10,000), each with its own Ed25519 key,
 * against one hub process (`tender hub serve`, embedded SQLite store) on this machine; this process is
 * the load generator. Each vessel polls its desired state with If-None-Match every 60 s, sends a status
 * report every 15 min and a small telemetry batch every 5 min, at random phases, from 256 loopback
 * addresses (the hub caps connections per address) over keep-alive sockets. Measured over the window:
 * p50/p99 of the poll, status and telemetry routes, the hub's CPU (share of one core) and RSS, and the
 * fleet page's server time with N vessels (signed in, first page). Baseline in the same run: the same
 * routes asked one at a time, a few per second, against the hub otherwise idle.
 * With --pg (issue 15) the same load goes to two hub processes on one PostgreSQL database and one S3
 * chunk store behind haproxy (bench/hub-scale-rig.ts); CPU and RSS are then of both hubs, and haproxy's
 * and PostgreSQL's CPU are given beside them. --runs R: R runs, each from a fresh store, and their medians.
 * Usage: npx tsx bench/hub-scale.ts [vessels=10000] [seconds=120] [--pg] [--runs R=1]
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { HubStore } from '../hub/store/hub-store.js';
import { addRoot } from '../hub/roots.js';
import { newEnrolmentToken } from '../hub/enrolment.js';
import { createOpsToken } from '../hub/ops-tokens.js';
import { generateKey, type PrivateKey } from '../shared/trust/keys.js';
import { signVesselRequest } from '../shared/protocol/vessel-auth.js';
import { MEDIA } from '../shared/protocol/http.js';
import { paths } from '../shared/protocol/routes.js';
import { CLASS, encodeBatch, type WireRecord } from '../shared/protocol/telemetry-wire.js';
import { runDeferredCleanup, useFileScope } from '../test/helpers/cleanup.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../test/helpers/keys.js';
import { rssMb, startRig, treeCpuS, type HubProcess } from './hub-scale-rig.js';
import { bucketQuantile, pct, printTable, type Route, type ScaleResult } from './hub-scale-report.js';
import { machine, median } from './lib.js';

const args = parseArgs({
  allowPositionals: true,
  options: { pg: { type: 'boolean', default: false }, runs: { type: 'string', default: '1' } },
});
const N = Number(args.positionals[0] ?? 10_000);
const WINDOW_S = Number(args.positionals[1] ?? 120);
const MODE = args.values.pg ? 'pg' : 'sqlite';
const RUNS = Number(args.values.runs);
const POLL_S = 60;
const STATUS_S = 15 * 60;
const TELEMETRY_S = 5 * 60;
const ADDRESSES = 256;

interface Sim {
  name: string;
  id: string;
  key: PrivateKey;
  etag: string;
  seq: number;
  epoch: string;
  agent: Agent;
}

async function setUp(store: HubStore): Promise<{ sims: Sim[]; token: string }> {
  const now = Date.now();
  const keys = makeKeys();
  const rootBytes = signedRoot(rootPayloadFor(1, keys), keys.root);
  await addRoot(store, rootBytes, now);
  const agents = Array.from(
    { length: ADDRESSES },
    (_, i) =>
      new Agent({
        keepAlive: true,
        maxSockets: 32,
        localAddress: `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`,
      } as ConstructorParameters<typeof Agent>[0]),
  );
  const sims: Sim[] = [];
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const name = `ship-${String(i).padStart(5, '0')}`;
    const tok = newEnrolmentToken('online', 60_000, { version: 1, bytes: rootBytes }, now);
    const groups = [`fleet-${i % 20}`];
    const v = await store.vessels.create({ name, groups, token: tok.stored }, now);
    const key = generateKey().key;
    await store.enrolment.claim(
      { tokenHash: tok.stored.tokenHash, publicKey: key.publicRaw.toString('base64'), address: '127.0.0.1' },
      now,
    );
    sims.push({
      name,
      id: v.id,
      key,
      etag: '',
      seq: 0,
      epoch: randomBytes(8).toString('hex'),
      agent: agents[i % ADDRESSES]!,
    });
  }
  const token = (await createOpsToken(store, 'admin', 'bench', now)).token;
  await store.close();
  console.error(`enrolled ${N} vessels in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { sims, token };
}

function send(
  url: URL,
  agent: Agent | undefined,
  method: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; ms: number; etag?: string; cookie?: string; text: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ms: performance.now() - t0,
          etag: res.headers.etag,
          cookie: res.headers['set-cookie']?.[0],
          text,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const REPORT = (s: Sim) =>
  Buffer.from(
    JSON.stringify({
      agentVersion: '0.1.0',
      current: null,
      previous: null,
      pending: null,
      held: false,
      rootVersion: 1,
      backlog: 0,
      services: [],
      bootId: '247074a3-593b-44aa-9b3a-14b2d16ed49a',
      reportedAt: new Date().toISOString(),
      apps: [],
      hold: null,
      link: {
        state: 'up',
        lastOkAt: new Date().toISOString(),
        lastError: null,
        bytesUp24h: 9000 + (s.seq % 100),
        bytesDown24h: 12000,
        requests24h: 1500,
        failures24h: 0,
        rttMs: 600,
      },
    }),
  );

function telemetryBody(s: Sim): Buffer {
  const recs: WireRecord[] = [];
  const ts = Date.now();
  for (let k = 0; k < 5; k++)
    recs.push({
      seq: ++s.seq,
      ts: ts - k * 60_000,
      cls: CLASS.info,
      kind: 'log',
      source: 'sms/app',
      body: `work order ${s.seq} updated by crew; pump ${k} inspected`,
      bootId: 'bench',
    });
  return gzipSync(Buffer.from(JSON.stringify(encodeBatch(s.epoch, recs, {}, 0))));
}

async function hit(hub: string, s: Sim, route: Route): Promise<{ status: number; ms: number }> {
  if (route === 'poll') {
    const path = paths.vesselDesired(s.name, { with: 'manifest' });
    const h = signVesselRequest(s.key, s.id, 'GET', path, Date.now());
    const r = await send(new URL(path, hub), s.agent, 'GET', { ...h, ...(s.etag && { 'if-none-match': s.etag }) });
    if (r.status === 200 && r.etag) s.etag = r.etag;
    return r;
  }
  const path = route === 'status' ? paths.vesselStatus(s.name) : paths.vesselTelemetry(s.name);
  const body = route === 'status' ? REPORT(s) : telemetryBody(s);
  const h = signVesselRequest(s.key, s.id, 'POST', path, Date.now(), body);
  const type: Record<string, string> =
    route === 'status'
      ? { 'content-type': 'application/json' }
      : { 'content-type': MEDIA.telemetry, 'content-encoding': 'gzip' };
  return send(new URL(path, hub), s.agent, 'POST', { ...h, ...type, 'content-length': String(body.length) }, body);
}

const ROUTE_OF: Record<Route, string> = {
  poll: '/api/v1/vessels/:name/desired',
  status: '/api/v1/vessels/:name/status',
  telemetry: '/api/v1/vessels/:name/telemetry',
};

/** The hubs' own request-duration histograms (each one's /metrics), cumulative counts per route and bucket. */
async function hubBuckets(hubs: HubProcess[]): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>();
  for (const hub of hubs) {
    const text = (await send(new URL('/metrics', hub.url), undefined, 'GET', {})).text;
    for (const m of text.matchAll(
      /^tender_hub_http_request_duration_seconds_bucket\{le="([^"]+)",route="([^"]+)"\} (\d+)/gm,
    )) {
      const b = out.get(m[2]!) ?? new Map<number, number>();
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      b.set(le, (b.get(le) ?? 0) + Number(m[3]));
      out.set(m[2]!, b);
    }
  }
  return out;
}

async function pageMs(hub: string, token: string, runs = 7): Promise<number[]> {
  const login = await send(
    new URL('/login', hub),
    undefined,
    'POST',
    { 'content-type': 'application/x-www-form-urlencoded' },
    Buffer.from(`token=${encodeURIComponent(token)}`),
  );
  if (login.status !== 303 || !login.cookie) throw new Error(`sign-in: ${login.status} ${login.text.slice(0, 200)}`);
  const cookie = login.cookie.split(';')[0]!;
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await send(new URL('/', hub), undefined, 'GET', { cookie });
    if (r.status !== 200 || !r.text.includes('ship-00000')) throw new Error(`fleet page: ${r.status}`);
    out.push(r.ms);
  }
  return out;
}

/** The hub idle: each route asked one at a time by a few vessels, 5 a second. */
async function baseline(hub: string, sims: Sim[]): Promise<Record<Route, number[]>> {
  const out: Record<Route, number[]> = { poll: [], status: [], telemetry: [] };
  for (let i = 0; i < 60; i++)
    for (const route of ['poll', 'status', 'telemetry'] as Route[]) {
      const r = await hit(hub, sims[i]!, route);
      if (r.status >= 300 && r.status !== 304) throw new Error(`baseline ${route}: ${r.status}`);
      out[route].push(r.ms);
      await new Promise((res) => setTimeout(res, 200 / 3));
    }
  return out;
}

/** One run: a fresh store and hub(s), the set-up, the baseline, the window; everything it started ended. */
async function runOnce(): Promise<ScaleResult> {
  useFileScope();
  try {
    const rig = await startRig(MODE);
    const { sims, token } = await setUp(await rig.openStore());
    const served = await rig.serve();
    return await measure(served.url, served.hubs, served.others, sims, token);
  } finally {
    await runDeferredCleanup();
  }
}

async function measure(
  hub: string,
  hubs: HubProcess[],
  others: { name: string; pid: number }[],
  sims: Sim[],
  token: string,
): Promise<ScaleResult> {
  // Every vessel's first poll (200 with its ETag), as after a hub restart: then the steady state.
  const t0 = Date.now();
  const firstPollsFailed: Record<string, number> = {};
  const failedFirst = (why: string) => void (firstPollsFailed[why] = (firstPollsFailed[why] ?? 0) + 1);
  for (let i = 0; i < sims.length; i += 200)
    await Promise.all(
      sims.slice(i, i + 200).map((s) =>
        hit(hub, s, 'poll').then(
          (r) => void (r.status === 200 || failedFirst(`HTTP ${r.status}`)),
          (err: NodeJS.ErrnoException) => failedFirst(err.code ?? err.message),
        ),
      ),
    );
  const firstSeconds = ((Date.now() - t0) / 1000).toFixed(1);
  console.error(`first polls of ${N} vessels in ${firstSeconds} s, failed: ${JSON.stringify(firstPollsFailed)}`);
  const idle = await baseline(hub, sims);
  const idlePage = await pageMs(hub, token);
  const lat: Record<Route, number[]> = { poll: [], status: [], telemetry: [] };
  const failed: Record<Route, number> = { poll: 0, status: 0, telemetry: 0 };
  const due: { at: number; s: Sim; route: Route }[] = [];
  const start = Date.now() + 1000;
  for (const s of sims) {
    for (let at = start + Math.random() * POLL_S * 1000; at < start + WINDOW_S * 1000; at += POLL_S * 1000)
      due.push({ at, s, route: 'poll' });
    for (const [route, every] of [
      ['status', STATUS_S],
      ['telemetry', TELEMETRY_S],
    ] as const) {
      const at = start + Math.random() * every * 1000;
      if (at < start + WINDOW_S * 1000) due.push({ at, s, route });
    }
  }
  due.sort((a, b) => a.at - b.at);
  const cpu = () => [...hubs, ...others].map((p) => treeCpuS(p.pid));
  const cpuBefore = cpu();
  const loadBefore = loadavg()[0]!;
  const genBefore = process.cpuUsage();
  const bucketsBefore = await hubBuckets(hubs);
  const inFlight = new Set<Promise<void>>();
  let next = 0;
  let pageUnderLoad: number[] = [];
  let pageError: string | undefined;
  // A page that does not load under load is a figure of the run, not the end of it.
  const pageRun = new Promise<void>((res) => setTimeout(res, (WINDOW_S * 1000) / 2))
    .then(async () => {
      pageUnderLoad = await pageMs(hub, token, 5);
    })
    .catch((err: Error) => void (pageError = err.message));
  while (next < due.length) {
    const now = Date.now();
    while (next < due.length && due[next]!.at <= now) {
      const d = due[next++]!;
      const p = hit(hub, d.s, d.route)
        .then((r) => {
          if (r.status >= 300 && r.status !== 304) failed[d.route]++;
          else lat[d.route].push(r.ms);
        })
        .catch(() => {
          failed[d.route]++;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await new Promise((res) => setTimeout(res, 5));
  }
  await Promise.all(inFlight);
  await pageRun;
  const seconds = (Date.now() - start) / 1000;
  const share = cpu().map((c, i) => (c - cpuBefore[i]!) / seconds);
  const gen = process.cpuUsage(genBefore);
  const bucketsAfter = await hubBuckets(hubs);
  const rows = (['poll', 'status', 'telemetry'] as Route[]).map((r) => ({
    route: r,
    requests: lat[r].length,
    failed: failed[r],
    perSecond: lat[r].length / seconds,
    p50: pct(lat[r], 50),
    p99: pct(lat[r], 99),
    idleP50: pct(idle[r], 50),
    idleP99: pct(idle[r], 99),
    // Inside the hubs (their histograms: routing to the last byte written), without the generator's queueing.
    hubP50: bucketQuantile(bucketsAfter.get(ROUTE_OF[r])!, bucketsBefore.get(ROUTE_OF[r]), 0.5),
    hubP99: bucketQuantile(bucketsAfter.get(ROUTE_OF[r])!, bucketsBefore.get(ROUTE_OF[r]), 0.99),
  }));
  return {
    machine: machine(),
    at: new Date().toISOString(),
    mode: MODE,
    vessels: N,
    windowSeconds: seconds,
    firstPollsFailed,
    loadAverage1m: { atStart: loadBefore, atEnd: loadavg()[0]! },
    routes: rows,
    hubCpuShareOfOneCore: share.slice(0, hubs.length).reduce((a, b) => a + b, 0),
    perHubCpuShareOfOneCore: share.slice(0, hubs.length),
    othersCpuShareOfOneCore: Object.fromEntries(others.map((o, i) => [o.name, share[hubs.length + i]!])),
    generatorCpuShareOfOneCore: (gen.user + gen.system) / 1e6 / seconds,
    hubRssMb: hubs.map((h) => rssMb(h.pid)),
    fleetPageMs: { underLoadMedian: median(pageUnderLoad), idleMedian: median(idlePage), underLoadError: pageError },
  };
}

async function main(): Promise<void> {
  // Interrupted or crashed, the run still ends what it started (PostgreSQL, haproxy, the hubs, temp folders).
  const bail = (code: number) => () => void runDeferredCleanup().finally(() => process.exit(code));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, bail(130));
  for (const ev of ['uncaughtException', 'unhandledRejection'] as const)
    process.once(ev, (err) => {
      console.error(err);
      bail(1)();
    });
  const results: ScaleResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const r = await runOnce();
    results.push(r);
    console.log(JSON.stringify(r, null, 2));
    console.log(`run ${run} of ${RUNS} (${MODE}, ${N} vessels, ${WINDOW_S} s):`);
    printTable([r]);
  }
  if (RUNS > 1) {
    console.log(`median of ${RUNS} runs (${MODE}, ${N} vessels, ${WINDOW_S} s):`);
    printTable(results);
  }
}

await main();
