import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { startEngine } from '../helpers/engine.js';
import { startStubEngine, type StubEngine } from '../helpers/stub-engine.js';
import { unique } from '../helpers/names.js';
import { cleanup } from '../helpers/cleanup.js';
import { LinkSim } from '../link-sim.js';
import { runRouter } from '../../agent/router/control.js';
import { createLogger } from '../../shared/log.js';
import type { RolloutShow } from '../../shared/protocol/rollout-bodies.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * Journey 2 at fleet scale with agent processes (issue 11, Done when): a real hub and 20 enrolled vessels,
 * each a real `tender agent run` with its own key, state, router and watch window. Two run on real
 * Docker: A (the canary) on this machine's engine, B on a second engine started for the test with its
 * router on 127.0.0.2. The other 18 run on a stub runtime (test/helpers/stub-engine.ts: the Docker API
 * the agent uses, images really loaded from the chunks the agent verified, containers that answer HTTP
 * without running anything), each with the real router on its own loopback address. A 5% canary passes
 * and the waves follow; a release failing its gate on the canary halts with the rest untouched; a third
 * with --wave-quorum completes while three vessels are at sea (their agents stopped), which install it
 * when they return; pause and abort hold across hub restarts. `tender rollout show` of the first rollout
 * goes to ROLLOUT_SHOW_OUT when set.
 */
const CLI_MS = 120_000;
const STUBS = 18;

interface Ship {
  v: Vessel;
  /** Where its router listens. */
  host: string;
  stub?: StubEngine;
}

async function showOf(shore: Shore, id: number): Promise<RolloutShow> {
  const r = await fetch(`${shore.url}${paths.rollout(id)}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  expect(r.status).toBe(200);
  return (await r.json()) as RolloutShow;
}

describe('journey: a fleet rollout in waves to 20 agent processes', () => {
  it('canary, waves, a halt, a quorum with ships at sea, pause and abort across hub restarts', async () => {
    const app = unique('fleet');
    removeAppContainers(app);
    cleanup(() => removeAppContainers(app));
    // Release N serves "fleet vN"; release 3 has no /health, so its gate fails.
    const imageOf = new Map<string, string>();
    for (const n of [2, 3, 4, 5, 6]) {
      const tag = `tender-test/${app}:v${n}`;
      imageOf.set(buildBusyboxImage({ tag, body: `fleet v${n}\n`, health: n !== 3 }).slice(7, 19), String(n));
      cleanup(() => execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' }));
    }
    const engine = await startEngine();
    const shore = await startShore();
    const cli = async (args: string[]) => {
      const r = await tender(args, shore.env, CLI_MS);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const quiet = createLogger('stub-router', 'warn');
    const hubPort = Number(new URL(shore.url).port);
    const settings = { watchSeconds: 2 };
    let ships = 0;
    const enrol = async (name: string, host: string, stub: boolean): Promise<Ship> => {
      // Each ship reaches the hub from an address of its own (the hub limits enrolments and connections
      // per address, as it should for ships behind one satellite provider's NAT it would not).
      const link = new LinkSim({ host: '127.0.0.1', port: hubPort, localAddress: `127.0.5.${++ships}` });
      const via = shore.via(await link.start());
      cleanup(() => link.close());
      const v = await enrolVessel(shore, name, { ...settings, routerBind: host, hub: via }, { enrolVia: via });
      if (!stub) return { v, host };
      const engine = await startStubEngine(join(v.dataDir, '..', 'engine.sock'));
      const stop = new AbortController();
      void runRouter({ dataDir: v.dataDir, bind: host, log: quiet, signal: stop.signal });
      cleanup(() => stop.abort());
      await eventually(async () => existsSync(join(v.dataDir, 'router.sock')), 10_000, 50);
      return { v, host, stub: engine };
    };
    const a = await enrol(`${app}-a`, '127.0.0.1', false);
    const b = await enrol(`${app}-b`, '127.0.0.2', false);
    const stubs: Ship[] = [];
    for (let i = 0; i < STUBS; i += 6)
      stubs.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(6, STUBS - i) }, (_, k) =>
            enrol(`${app}-s${String(i + k).padStart(2, '0')}`, `127.0.4.${i + k + 1}`, true),
          ),
        )),
      );
    const fleet = [a, b, ...stubs];
    const byName = new Map(fleet.map((s) => [s.v.name, s]));
    for (const s of [a, b]) await s.v.startRouter();
    const start = (s: Ship) =>
      s.v.startAgent(s.stub ? { DOCKER_SOCKET: s.stub.socket } : s === b ? { DOCKER_SOCKET: engine.socket } : {});
    for (const s of fleet) start(s);

    const port = await freePort();
    for (const n of [2, 3, 4, 5, 6])
      await cli([
        'release',
        'publish',
        '--compose',
        composeFile(shore.dir, `v${n}`, `tender-test/${app}:v${n}`, port, app),
        '--key',
        shore.releaseKey,
        '--version',
        String(n),
      ]);

    /** The release a ship serves through its router: "fleet vN" from Docker, the image's id from a stub. */
    const served = async (s: Ship): Promise<string> => {
      const body = await getBody(port, s.host);
      const stub = /^stub ([0-9a-f]{12}) /.exec(body);
      return stub ? (imageOf.get(stub[1]!) ?? `unknown image ${stub[1]}`) : (/^fleet v(\d+)$/.exec(body)?.[1] ?? body);
    };
    const servedBy = async (ships: Ship[]) => Promise.all(ships.map(served));
    const report = async () =>
      (await Promise.all([a, b, stubs[0]!].map(async (s) => `${s.v.name}: ${await vesselReport(s.v)}`))).join('\n');
    const until = (id: number, what: string, ok: (s: RolloutShow) => boolean, timeoutMs = 240_000) =>
      eventuallyOrReport(
        `rollout ${id} ${what}`,
        async () => {
          const s = await showOf(shore, id);
          return ok(s) && s;
        },
        async () => `${JSON.stringify(await showOf(shore, id))}\n${await report()}`,
        timeoutMs,
        500,
      );
    const rollout = async (args: string[]) =>
      JSON.parse(await cli(['rollout', 'start', ...args, '--target', 'all', '--json'])) as {
        id: number;
        waves: string[][];
      };

    // 1. Release 2: the canary (A, 5%) passes; 25% and 100% follow by themselves; all 20 serve it.
    const r2 = await rollout([
      `${app}@2`,
      '--waves',
      '5,25,100',
      '--min-success',
      '99.5%',
      '--canary',
      `vessel:${a.v.name}`,
    ]);
    expect(r2.waves.map((w) => w.length)).toEqual([1, 4, 15]);
    expect(r2.waves[0]).toEqual([a.v.name]);
    const done2 = await until(r2.id, 'completed', (s) => s.rollout.state === 'completed');
    expect(done2.waves.map((w) => w.counts.succeeded)).toEqual([1, 4, 15]);
    expect(await servedBy(fleet)).toEqual(fleet.map(() => '2'));
    // Each stub loaded the image its agent assembled from verified chunks: the same ID as Docker's.
    for (const s of stubs) expect([...s.stub!.images.keys()].map((id) => imageOf.get(id.slice(7, 19)))).toContain('2');
    const shown = await cli(['rollout', 'show', String(r2.id)]);
    if (process.env.ROLLOUT_SHOW_OUT) writeFileSync(process.env.ROLLOUT_SHOW_OUT, shown);
    expect(shown).toMatch(/wave 1 \(5%, canary\): started; 1 healthy, 0 failed, 0 held, 0 unfinished of 1/);
    expect(shown).toMatch(/wave 3 \(100%\): started; 15 healthy, 0 failed, 0 held, 0 unfinished of 15/);

    // 2. Release 3 fails its health gate on the canary (real Docker): halted, the other 19 never see it.
    const r3 = await rollout([
      `${app}@3`,
      '--waves',
      '5,25,100',
      '--min-success',
      '99.5%',
      '--canary',
      `vessel:${a.v.name}`,
    ]);
    const halted = await until(r3.id, 'halted', (s) => s.rollout.state === 'halted');
    expect(halted.rollout.reason).toBe(
      'wave 1: 1 of 1 finished vessels failed; the rollout needs at least 99.5% successes',
    );
    expect(halted.waves[0]!.vessels[0]).toMatchObject({ vessel: a.v.name, outcome: 'failed', failure: 'gate-failed' });
    expect(halted.waves.slice(1).every((w) => w.vessels.every((m) => m.startedAt === null))).toBe(true);
    expect(await servedBy(fleet)).toEqual(fleet.map(() => '2'));
    for (const s of stubs)
      expect([...s.stub!.images.keys()].map((id) => imageOf.get(id.slice(7, 19)))).not.toContain('3');

    // 3. Release 4 with --wave-quorum 80%: three ships of the last wave are at sea (agents stopped); the
    //    rollout completes without them, and they install it when they come back.
    const r4 = await rollout([
      `${app}@4`,
      '--waves',
      '5,25,100',
      '--max-failures',
      '0%',
      '--wave-quorum',
      '80%',
      '--canary',
      `vessel:${a.v.name}`,
    ]);
    const atSea = r4.waves[2]!.map((n) => byName.get(n)!)
      .filter((s) => s.stub)
      .slice(0, 3);
    expect(atSea).toHaveLength(3);
    for (const s of atSea) await s.v.agent!.stop('SIGKILL');
    const done4 = await until(r4.id, 'completed', (s) => s.rollout.state === 'completed');
    expect(done4.waves[2]!.counts).toMatchObject({ succeeded: 12, unfinished: 3 });
    expect(await servedBy(atSea)).toEqual(['2', '2', '2']);
    for (const s of atSea) start(s);
    await until(r4.id, 'reached by the ships back from sea', (s) => s.waves[2]!.counts.succeeded === 15, 120_000);
    expect(await servedBy(fleet)).toEqual(fleet.map(() => '4'));

    // 4. Release 5, paused in its first wave; the hub restarts; still paused, no later wave starts; resumed,
    //    it completes.
    const restart = async () => {
      await shore.hub.stop('SIGTERM');
      await shore.start(`127.0.0.1:${hubPort}`);
    };
    const r5 = await rollout([`${app}@5`, '--waves', '5,50,100', '--canary', `vessel:${a.v.name}`]);
    await cli(['rollout', 'pause', String(r5.id)]);
    await restart();
    await until(r5.id, 'canary done while paused', (s) => s.waves[0]!.counts.succeeded === 1, 120_000);
    // Time for a wave to have started if pause did not hold.
    await new Promise((r) => setTimeout(r, 5000));
    const paused = await showOf(shore, r5.id);
    expect(paused.rollout).toMatchObject({ state: 'paused', currentWave: 0 });
    expect(paused.waves.slice(1).every((w) => w.vessels.every((m) => m.startedAt === null))).toBe(true);
    expect(await servedBy(stubs)).toEqual(stubs.map(() => '4'));
    await cli(['rollout', 'resume', String(r5.id)]);
    await until(r5.id, 'completed', (s) => s.rollout.state === 'completed');
    expect(await servedBy(fleet)).toEqual(fleet.map(() => '5'));

    // 5. Release 6 aborted in its first wave across hub restarts: ships not yet started keep release 5.
    const r6 = await rollout([`${app}@6`, '--waves', '5,50,100', '--canary', `vessel:${a.v.name}`]);
    await restart();
    await cli(['rollout', 'abort', String(r6.id)]);
    await restart();
    const aborted = await until(r6.id, 'aborted', (s) => s.rollout.state === 'aborted', 30_000);
    expect(aborted.rollout.reason).toMatch(/^aborted by ops:/);
    const notStarted = aborted.waves.flatMap((w) => w.vessels).filter((m) => m.startedAt === null);
    expect(notStarted.length).toBeGreaterThanOrEqual(19);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await servedBy(notStarted.map((m) => byName.get(m.vessel)!))).toEqual(notStarted.map(() => '5'));
  }, 900_000);
});
