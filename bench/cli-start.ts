/**
 * CLI start time: `tender --help` and `tender status` (an enrolled vessel, agent not running) from a checkout
 * — the compiled bundle bin/tender.js runs (dist/cli/tender.cjs), the TypeScript sources through tsx
 * (TENDER_FROM_SOURCES=1, what every start cost before) — and the single executable (dist/tender, built
 * first when missing). Median of 5 after one warm-up run, wall time and CPU time (user + sys), with the
 * load average, since this machine is shared. Goal: under 300 ms from a checkout.
 * Usage: npx tsx bench/cli-start.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { enrolVessel, startShore } from '../test/helpers/fleet.js';
import { TENDER_BIN } from '../test/helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../test/helpers/cleanup.js';
import { machine, median } from './lib.js';
import { withRunCa } from './run-ca.js';

// The shore serves HTTPS from a CA made for this run (bench/run-ca.ts).
await withRunCa();

const RUNS = 5;
const GOAL_MS = 300;
const SEA = 'dist/tender';
const TIME = '/usr/bin/time';

useFileScope();
const shore = await startShore();
const vessel = await enrolVessel(shore, `bench-cli-${process.pid}`);
await shore.hub.stop();
if (!existsSync(SEA)) execFileSync('bash', ['installer/build-sea.sh', SEA], { stdio: 'inherit' });

interface Run {
  wall: number;
  cpu: number | null;
}

function once(cmd: string[], env: NodeJS.ProcessEnv): Run {
  const withTime = existsSync(TIME);
  const argv = withTime ? [TIME, '-f', 'CPU %U %S', ...cmd] : cmd;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}: ${r.stderr}`);
  const m = /CPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : null };
}

function measure(cmd: string[], env: NodeJS.ProcessEnv = {}): { wall: number; cpu: number | null; all: number[] } {
  once(cmd, env); // warm-up: the page cache, V8's code cache after a build
  const runs = Array.from({ length: RUNS }, () => once(cmd, env));
  const cpus = runs.map((r) => r.cpu).filter((c): c is number => c !== null);
  return {
    wall: median(runs.map((r) => r.wall)),
    cpu: cpus.length ? median(cpus) : null,
    all: runs.map((r) => r.wall),
  };
}

const commands: Record<string, string[]> = { '--help': ['--help'], status: ['status', '--config', vessel.config] };
const launchers: Record<string, { cmd: string[]; env?: NodeJS.ProcessEnv }> = {
  'checkout, compiled bundle (bin/tender.js)': { cmd: [process.execPath, TENDER_BIN] },
  'checkout, sources through tsx (before)': { cmd: [process.execPath, TENDER_BIN], env: { TENDER_FROM_SOURCES: '1' } },
  'single executable (dist/tender)': { cmd: [SEA] },
};

const load0 = loadavg()[0]!.toFixed(1);
const rows: string[] = [];
const results: Record<string, Record<string, number>> = {};
for (const [name, l] of Object.entries(launchers)) {
  results[name] = {};
  for (const [what, args] of Object.entries(commands)) {
    const r = measure([...l.cmd, ...args], l.env);
    results[name][what] = r.wall;
    rows.push(
      `| ${name} | \`tender ${what === 'status' ? 'status' : '--help'}\` | **${Math.round(r.wall)} ms** ` +
        `(${r.all.map((x) => Math.round(x)).join(', ')}) | ${r.cpu === null ? '-' : `${Math.round(r.cpu)} ms`} | ` +
        `${(r.wall / GOAL_MS).toFixed(2)}x |`,
    );
  }
}
const load1 = loadavg()[0]!.toFixed(1);
console.log(`machine: ${machine()}; load average ${load0} at start, ${load1} at end`);
console.log('| launcher | command | wall, median of 5 (runs) | CPU (user+sys), median | wall / 300 ms goal |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
const bundle = results['checkout, compiled bundle (bin/tender.js)']!;
const tsx = results['checkout, sources through tsx (before)']!;
console.log(
  `bundle vs tsx: --help ${(tsx['--help']! / bundle['--help']!).toFixed(1)}x faster, ` +
    `status ${(tsx.status! / bundle.status!).toFixed(1)}x faster`,
);
await runDeferredCleanup();
