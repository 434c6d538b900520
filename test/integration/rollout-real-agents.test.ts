import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import {
  composeFile,
  enrolVessel,
  eventuallyOrReport,
  freePort,
  getBody,
  startShore,
  vesselReport,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { startEngine } from '../helpers/engine.js';
import { unique } from '../helpers/names.js';
import { cleanup } from '../helpers/cleanup.js';
import { LinkSim } from '../link-sim.js';
import type { RolloutShow } from '../../shared/protocol/rollout-bodies.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * Journey 2 with real agents (issue 11, Done when: at least two with real Docker and the router). Two
 * ships, each its own server: vessel A on this machine's engine, vessel B on a second Docker engine
 * started for the test, its router on another loopback address, its link to the hub through the link
 * simulator. A rollout in two waves with A as the canary: A installs and passes its watch window, then
 * the second wave reaches B, whose maintenance window is closed. B downloads but does not switch, and
 * says so ashore ("waiting for window until T"). The link is cut; B's clock reaches the window (an
 * injected clock: the agent restarted with its clock moved on, the hub's last offset kept on board); B
 * switches with the link down, serves through its router, and when the link returns the rollout completes.
 */
const CLI_MS = 120_000;
const HOUR = 3600_000;

async function showOf(shore: Shore, id: number): Promise<RolloutShow> {
  const r = await fetch(`${shore.url}${paths.rollout(id)}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  expect(r.status).toBe(200);
  return (await r.json()) as RolloutShow;
}

function member(show: RolloutShow, vessel: string) {
  return show.waves.flatMap((w) => w.vessels).find((v) => v.vessel === vessel)!;
}

/** A window of one hour starting on the hour two hours from now (UTC): closed now, and for a while yet. */
function closedWindow(now = Date.now()): { spec: string; opensAt: number } {
  const opensAt = Math.floor((now + 2 * HOUR) / HOUR) * HOUR;
  const hh = (ms: number) => String(new Date(ms).getUTCHours()).padStart(2, '0');
  return { spec: `${hh(opensAt)}:00-${hh(opensAt + HOUR)}:00 UTC`, opensAt };
}

describe('journey: a rollout reaches real agents on two engines', () => {
  it('canary first, then the next wave; a closed window holds the switch, made with the link cut', async () => {
    const app = unique('waves');
    removeAppContainers(app);
    const tag = `tender-test/${app}:v1`;
    buildBusyboxImage({ tag, body: `waves v1 ${app}\n` });
    cleanup(() => execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' }));
    cleanup(() => removeAppContainers(app));
    const engine = await startEngine();
    const shore = await startShore();
    const cli = async (args: string[]) => {
      const r = await tender(args, shore.env, CLI_MS);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(shore.url).port) });
    const linkPort = await link.start();
    cleanup(() => link.close());
    const a = await enrolVessel(shore, unique('ship-a'), { watchSeconds: 3 });
    const b = await enrolVessel(shore, unique('ship-b'), {
      watchSeconds: 3,
      hub: shore.via(linkPort),
      // Its own server: the router on another loopback address, the containers on the second engine.
      routerBind: '127.0.0.2',
    });
    const bEnv = { DOCKER_SOCKET: engine.socket };
    for (const v of [a, b]) await v.startRouter();
    a.startAgent();
    b.startAgent(bEnv);
    const report = async (v: Vessel) => `${v.name}: ${await vesselReport(v)}`;
    const both = async () => `${await report(a)}\n${await report(b)}`;
    const port = await freePort();
    const window = closedWindow();
    await cli(['window', 'set', `vessel:${b.name}`, window.spec]);
    await cli([
      'release',
      'publish',
      '--compose',
      composeFile(shore.dir, 'v1', tag, port, app),
      '--key',
      shore.releaseKey,
      '--version',
      '1',
    ]);
    const started = JSON.parse(
      await cli([
        'rollout',
        'start',
        `${app}@1`,
        '--target',
        'all',
        '--waves',
        '50,100',
        '--canary',
        `vessel:${a.name}`,
        '--json',
      ]),
    );
    expect(started.waves).toEqual([[a.name], [b.name]]);
    const id = started.id as number;

    // Wave 1: the canary alone. B is not targeted yet and keeps what it has (nothing).
    await waitServing(port, `waves v1 ${app}`, a, 120_000);
    const canary = await eventuallyOrReport(
      'the canary through its watch window',
      async () => {
        const s = await showOf(shore, id);
        return member(s, a.name).outcome === 'installed-healthy' && s;
      },
      both,
      60_000,
      500,
    );
    expect(canary.rollout.state).toBe('active');

    // Wave 2 reaches B: it downloads into its own engine, but its window is closed.
    const waiting = await eventuallyOrReport(
      "B's report that the switch waits for its window",
      async () => {
        const m = member(await showOf(shore, id), b.name);
        return m.outcome === 'waiting-for-window' && m;
      },
      both,
      120_000,
      500,
    );
    expect(waiting.until).toBe(new Date(window.opensAt).toISOString());
    expect(engine.docker(['image', 'ls', '-q']).trim()).not.toBe('');
    expect(engine.docker(['ps', '-q', '--filter', `label=io.tender.app=${app}`]).trim()).toBe('');
    expect(await getBody(port)).toBe(`waves v1 ${app}`);
    expect(await getBody(port, '127.0.0.2')).toMatch(/^error/);
    const st = await b.status();
    expect(JSON.stringify(st)).toContain('waiting for window');

    // The link is cut, and B's clock moves into the window: it switches on its own, offline.
    link.set('down');
    await b.agent!.stop();
    b.startAgent({ ...bEnv, TENDER_CLOCK_OFFSET_MS: String(window.opensAt - Date.now() + 10 * 60_000) });
    await eventuallyOrReport(
      'B serving v1 with the link down',
      async () => (await getBody(port, '127.0.0.2')) === `waves v1 ${app}`,
      both,
      120_000,
      250,
    );
    // Same container name on both ships: each engine holds its own.
    const names = ['ps', '--format', '{{.Names}}', '--filter', `label=io.tender.app=${app}`];
    const nameA = execFileSync('docker', names).toString().trim();
    const nameB = engine.docker(names).trim();
    expect(nameB).toBe(nameA);
    expect(member(await showOf(shore, id), b.name).outcome).toBe('waiting-for-window');

    // The link returns: B's outcome reaches the hub and the rollout completes.
    link.set('up');
    const done = await eventuallyOrReport(
      'the rollout completed',
      async () => {
        const s = await showOf(shore, id);
        return s.rollout.state === 'completed' && s;
      },
      both,
      120_000,
      500,
    );
    expect(member(done, b.name).outcome).toBe('installed-healthy');
    expect(member(done, a.name).outcome).toBe('installed-healthy');
    const shown = await cli(['rollout', 'show', String(id)]);
    expect(shown).toContain(b.name);
    if (process.env.ROLLOUT_REAL_SHOW_OUT) console.log(shown);
  }, 600_000);
});
