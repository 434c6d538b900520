/**
 * Router overhead against a direct connection: p50/p99 latency and throughput of keep-alive HTTP through
 * `tender router run` versus straight to the backend, measured in the same run, median of 5 runs.
 * Usage: npx tsx bench/router-overhead.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { routerRequest } from '../agent/router/control.js';
import { closedLoop, machine, median, percentile } from './lib.js';

const RUNS = 5;
const REQUESTS = 20_000;
const CONCURRENCY = 16;
const BACKEND_PORT = 18990;
const ROUTER_PORT = 18991;

const dir = mkdtempSync(join(tmpdir(), 'tender-bench-'));
const config = join(dir, 'agent.json');
writeFileSync(
  config,
  JSON.stringify({
    version: 1,
    hub: 'http://127.0.0.1:1',
    vesselName: 'bench',
    vesselId: 'v_0000000000000000',
    dataDir: dir,
    routerBind: '127.0.0.1',
  }),
);
const backend = spawn(
  process.execPath,
  ['-e', `require('http').createServer((q,s)=>s.end('hello from the backend\\n')).listen(${BACKEND_PORT},'127.0.0.1')`],
  { stdio: 'ignore' },
);
const router = spawn(process.execPath, ['bin/tender.js', 'router', 'run', '--config', config], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve) =>
  router.stdout!.on('data', (d) => String(d).includes('router running') && resolve()),
);
await routerRequest(join(dir, 'router.sock'), {
  op: 'set',
  routes: [
    {
      port: ROUTER_PORT,
      target: { host: '127.0.0.1', port: BACKEND_PORT },
      app: 'bench',
      service: 'web',
      release: '1',
      colour: 'blue',
    },
  ],
});

const rows: { direct: ReturnType<typeof summary>; router: ReturnType<typeof summary> }[] = [];
function summary(r: Awaited<ReturnType<typeof closedLoop>>) {
  return {
    p50: percentile(r.latencies, 50),
    p99: percentile(r.latencies, 99),
    rps: r.latencies.length / r.seconds,
    failed: r.failed,
  };
}
await closedLoop(BACKEND_PORT, 2000, CONCURRENCY); // warm-up
await closedLoop(ROUTER_PORT, 2000, CONCURRENCY);
for (let i = 0; i < RUNS; i++) {
  const direct = summary(await closedLoop(BACKEND_PORT, REQUESTS, CONCURRENCY));
  const viaRouter = summary(await closedLoop(ROUTER_PORT, REQUESTS, CONCURRENCY));
  rows.push({ direct, router: viaRouter });
}
backend.kill();
router.kill();
rmSync(dir, { recursive: true, force: true });

const m = (f: (r: (typeof rows)[number]) => number) => median(rows.map(f));
const out = {
  machine: machine(),
  runs: RUNS,
  requestsPerRun: REQUESTS,
  concurrency: CONCURRENCY,
  direct: { p50ms: m((r) => r.direct.p50), p99ms: m((r) => r.direct.p99), rps: m((r) => r.direct.rps) },
  router: { p50ms: m((r) => r.router.p50), p99ms: m((r) => r.router.p99), rps: m((r) => r.router.rps) },
  addedP50ms: m((r) => r.router.p50 - r.direct.p50),
  addedP99ms: m((r) => r.router.p99 - r.direct.p99),
  throughputRatio: m((r) => r.router.rps / r.direct.rps),
  failed: rows.reduce((a, r) => a + r.direct.failed + r.router.failed, 0),
};
console.log(JSON.stringify(out, null, 2));
