import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import {
  composeFile,
  enrolVessel,
  eventuallyOrReport,
  freePort,
  getBody,
  publishAndRollout,
  startShore,
  vesselReport,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * Drift of the live release against the real Docker engine (issue 10 item 10): the live container
 * removed by hand, stopped by hand, or replaced by a stranger under its name is made again, started again
 * or replaced, serving again within a bounded time, each with a drift.repaired event ashore and a
 * counted restart. Real hub, router and agent processes; names unique to this run.
 */
const APP = unique('dr');
const IMAGE = `tender-test/${APP}:v1`;
const docker = (...args: string[]) => execFileSync('docker', args).toString().trim();

let shore: Shore | undefined;
let vessel: Vessel | undefined;

afterAll(() => {
  removeAppContainers(APP);
  for (const args of [
    ['rm', '-f', `${APP}-stranger`],
    ['rmi', '-f', IMAGE],
  ])
    try {
      execFileSync('docker', args, { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
});

async function events(): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const r = await fetch(`${shore!.url}${paths.vesselEvents(vessel!.name, { limit: 1000 })}`, {
    headers: { authorization: `Bearer ${shore!.env.TENDER_TOKEN}` },
  });
  return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
}

describe('drift repair against the real engine (issue 10 item 10)', () => {
  it(
    'makes again a removed live container, starts a stopped one, replaces a stranger',
    { timeout: 300_000 },
    async () => {
      buildBusyboxImage({ tag: IMAGE, body: 'portal v1\n' });
      shore = await startShore();
      // A short watch window: drift inside it is the watch's business (it rolls back), not repair's.
      vessel = await enrolVessel(shore, `ship-${APP}`, { watchSeconds: 2 });
      const port = await freePort();
      await vessel.startRouter();
      vessel.startAgent();
      await publishAndRollout(shore, composeFile(shore.dir, 'v1', IMAGE, port, APP), '1.0.0', `vessel:${vessel.name}`);
      await waitServing(port, 'portal v1', vessel, 90_000);
      const live = () => docker('ps', '-a', '--filter', `label=io.tender.app=${APP}`, '--format', '{{.Names}}');
      // Past the watch window before anything is touched.
      await new Promise((r) => setTimeout(r, 5000));
      const name = live();
      expect(name).toMatch(new RegExp(APP));
      const report = () => vesselReport(vessel!);
      const repaired = async (n: number) =>
        eventuallyOrReport(
          `${n} drift.repaired events ashore`,
          async () => (await events()).filter((e) => e.type === 'drift.repaired').length >= n,
          report,
          60_000,
          1000,
        );

      // 1. removed by hand: made again (drift is checked every 10 s), serving again.
      docker('rm', '-f', name);
      expect(await getBody(port)).not.toBe('portal v1');
      await waitServing(port, 'portal v1', vessel, 60_000);
      await repaired(1);

      // 2. stopped by hand: started again.
      docker('stop', '-t', '1', live());
      await waitServing(port, 'portal v1', vessel, 60_000);
      await repaired(2);

      // 3. a stranger under its name: removed and the release's own container made again.
      const current = live();
      docker('rm', '-f', current);
      docker('run', '-d', '--name', current, '--label', `io.tender.app=${APP}`, IMAGE, '/bin/sleep', '600');
      await waitServing(port, 'portal v1', vessel, 60_000);
      await repaired(3);
      // Events come newest first; in order of their counted restarts they are the three problems made.
      const repairs = (await events())
        .filter((e) => e.type === 'drift.repaired')
        .map((e) => e.data as { problem: string; restarts: number })
        .sort((a, b) => a.restarts - b.restarts);
      expect(repairs.map((r) => r.restarts)).toEqual([1, 2, 3]);
      expect(repairs.map((r) => r.problem)).toEqual([
        'missing',
        expect.stringMatching(/^exited with code/),
        'replaced by a container not its own',
      ]);
    },
  );
});
