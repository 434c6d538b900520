/**
 * The swap under load, end to end: real hub, router and agent processes and the real Docker engine.
 * - requests failed during 20 consecutive swaps (v1 <-> v2) at 200 requests/s, one new connection each;
 * - time from `tender rollback` to the old release answering through the router (median of 5);
 * - requests failed while the agent is killed (-9) and restarted under load.
 * Usage: npx tsx bench/swaps.ts
 */
import { buildSwapTestImages, removeAppContainers } from '../test/helpers/images.js';
import {
  composeFile,
  enrolVessel,
  freePort,
  getBody,
  publishAndRollout,
  startShore,
  waitServing,
} from '../test/helpers/fleet.js';
import { eventually, tender } from '../test/helpers/proc.js';
import { startLoad } from '../test/helpers/load.js';
import { runDeferredCleanup, useFileScope } from '../test/helpers/cleanup.js';
import { machine, median } from './lib.js';
import { unique } from '../test/helpers/names.js';
import { withRunCa } from './run-ca.js';

// The shore serves HTTPS from a CA made for this run (bench/run-ca.ts).
await withRunCa();

const APP = unique('sms');
const SWAPS = 20;
const RATE = 200;

useFileScope();
removeAppContainers(APP);
buildSwapTestImages();
const shore = await startShore();
const vessel = await enrolVessel(shore, 'bench', { watchSeconds: 0 });
const port = await freePort();
await vessel.startRouter();
vessel.startAgent();
await publishAndRollout(shore, composeFile(shore.dir, 'v1', 'tender-test/portal:v1', port, APP), '1');
await waitServing(port, 'portal v1');

const load = startLoad(port, RATE, 30 * 60_000);
const swapSeconds: number[] = [];
for (let i = 2; i <= SWAPS + 1; i++) {
  const img = i % 2 === 0 ? 'v2' : 'v1';
  const t0 = Date.now();
  await publishAndRollout(shore, composeFile(shore.dir, `r${i}`, `tender-test/portal:${img}`, port, APP), String(i));
  await eventually(
    async () => {
      const s = await vessel.status();
      return s.release.current === String(i) && s.lastUpdate.state === 'done';
    },
    120_000,
    100,
  );
  swapSeconds.push((Date.now() - t0) / 1000);
}
const swapStats = await load.stop();

// Crew rollback timing: from the command to the old release answering through the router.
const rollbackMs: number[] = [];
for (let i = 0; i < 5; i++) {
  const want = (await getBody(port)) === 'portal v1' ? 'portal v2' : 'portal v1';
  const t0 = Date.now();
  const p = tender(['rollback', '--config', vessel.config]);
  await eventually(async () => (await getBody(port)) === want, 60_000, 20);
  rollbackMs.push(Date.now() - t0);
  await p;
}

const load2 = startLoad(port, RATE);
await new Promise((r) => setTimeout(r, 1000));
await vessel.agent!.stop('SIGKILL');
await new Promise((r) => setTimeout(r, 2000));
vessel.startAgent();
await eventually(async () => (await vessel.status()).link.state === 'up', 30_000);
await new Promise((r) => setTimeout(r, 1000));
const killStats = await load2.stop();

await runDeferredCleanup();
removeAppContainers(APP);
console.log(
  JSON.stringify(
    {
      machine: machine(),
      swaps: SWAPS,
      ratePerSecond: RATE,
      swapRequests: swapStats.ok + swapStats.failed,
      swapFailed: swapStats.failed,
      swapErrors: swapStats.errors.slice(0, 5),
      medianSecondsPublishToLive: median(swapSeconds),
      rollbackToAnsweringMs: { runs: rollbackMs, median: median(rollbackMs) },
      agentKillRequests: killStats.ok + killStats.failed,
      agentKillFailed: killStats.failed,
    },
    null,
    2,
  ),
);
process.exit(0);
