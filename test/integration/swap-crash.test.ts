import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { buildSwapTestImages, removeAppContainers } from '../helpers/images.js';
import {
  composeFile,
  enrolVessel,
  freePort,
  getBody,
  publishAndRollout,
  startShore,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { unique } from '../helpers/names.js';

/**
 * kill -9 at each journal step of a swap (a crew rollback between two releases kept on board), then a
 * restart of the agent: exactly one complete release serves. Before the flip the update is undone; after
 * it, finished.
 */
const APP = unique('crash');
const REPO = unique('tender-test/crash');
let shore: Shore;
let vessel: Vessel;
let port: number;

function running(): string[] {
  return execFileSync('docker', ['ps', '--filter', `label=io.tender.app=${APP}`, '--format', '{{.Names}}'])
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean);
}

beforeAll(async () => {
  useFileScope();
  removeAppContainers(APP);
  buildSwapTestImages(REPO);
  shore = await startShore();
  vessel = await enrolVessel(shore, 'ship-crash', { watchSeconds: 0 });
  port = await freePort();
  await vessel.startRouter();
  vessel.startAgent();
  await publishAndRollout(shore, composeFile(shore.dir, 'v1', `${REPO}:v1`, port, APP), '1.0.0');
  await waitServing(port, 'portal v1', vessel);
  await publishAndRollout(shore, composeFile(shore.dir, 'v2', `${REPO}:v2`, port, APP), '2.0.0');
  await waitServing(port, 'portal v2', vessel);
  await eventually(async () => (await vessel.status()).lastUpdate?.state === 'done');
  // A crew rollback holds the vessel, so the agent restarted below does not chase the shore target.
  expect((await tender(['rollback', '--config', vessel.config])).code).toBe(0);
  await vessel.agent!.stop();
  await shore.hub.stop();
}, 120_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
});

const body = (v: string) => `portal v${v[0]}`;

const faults: [string, 'undone' | 'finished'][] = [
  ['kill:before:start', 'undone'],
  ['kill:after:start', 'undone'],
  ['kill:after:gate', 'undone'],
  ['kill:before:flip', 'undone'],
  ['kill:after:flip', 'finished'],
  ['kill:after:commit', 'finished'],
  ['kill:before:stop', 'finished'],
  ['kill:after:stop', 'finished'],
  ['kill:before:prune', 'finished'],
];

describe('kill -9 at each step of a swap', () => {
  for (const [fault, outcome] of faults) {
    const does = outcome === 'undone' ? 'undoes the update' : 'finishes the update';
    it(`${fault}: the restarted agent ${does} and one release serves`, async () => {
      const before = (await vessel.status()).release.current as string;
      const other = before === '1.0.0' ? '2.0.0' : '1.0.0';
      const r = await tender(['rollback', other, '--config', vessel.config], { TENDER_FAULT: fault });
      expect(r.code, `${r.stdout} ${r.stderr}`).not.toBe(0);
      expect((await vessel.status()).lastUpdate.state).toBe('running');

      const agent = vessel.startAgent();
      const st = await eventually(async () => {
        const s = await vessel.status();
        return s.lastUpdate.state !== 'running' && s;
      }, 40_000);
      await agent.stop();
      const expected = outcome === 'undone' ? before : other;
      expect(st.release.current).toBe(expected);
      expect(st.lastUpdate.state).toBe(outcome === 'undone' ? 'failed' : 'done');
      expect(await getBody(port)).toBe(body(expected));
      expect(running()).toEqual([`tender-${APP}-portal-${expected}`]);
    }, 120_000);
  }
});
