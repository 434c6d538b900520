import { describe, expect, it } from 'vitest';
import { onTestFinished } from 'vitest';
import { buildHub } from '../../hub/app.js';
import { startHub, type TestHub } from '../helpers/hub.js';
import { publishViaApi } from '../helpers/publish-api.js';
import { enrolSimVessel, type SimBehaviour, type SimVessel } from '../helpers/sim-vessel.js';
import { eventually } from '../helpers/proc.js';
import { paths } from '../../shared/protocol/routes.js';
import type { RolloutShow, RolloutView } from '../../shared/protocol/rollout-bodies.js';

/**
 * The rollout API on a real hub (HTTP, SQLite, the engine's timer) with simulated vessels that report
 * their outcomes through the telemetry route: waves advance and halt by themselves, bad input is refused
 * in one line with nothing changed, pause/resume/abort hold across a hub restart, a wave deadline is met
 * by the timer alone.
 */
interface Ctx {
  hub: TestHub;
  ref: { url: string };
  op: string;
  fleet: SimVessel[];
  clock: { now: number };
}

const failing = new Set<string>();
const behave: SimBehaviour = (app, version) => (failing.has(`${app}@${version}`) ? 'gate-failed' : 'healthy');

async function setup(n: number, tickMs = 100): Promise<Ctx> {
  const clock = { now: Date.now() };
  const hub = await startHub({
    now: () => clock.now,
    rolloutTickMs: tickMs,
    limits: { ENROL_ATTEMPTS_PER_MINUTE: 1000 },
  });
  const ref = { url: await hub.listen() };
  const fleet: SimVessel[] = [];
  for (let i = 0; i < n; i++)
    fleet.push(
      await enrolSimVessel(ref, hub.token('operator'), `ship-${String(i).padStart(2, '0')}`, ['fleet'], behave),
    );
  return { hub, ref, op: hub.token('operator'), fleet, clock };
}

async function api<T = any>(
  c: Ctx,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const r = await fetch(`${c.ref.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${c.op}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const show = async (c: Ctx, id: number) => (await api<RolloutShow>(c, 'GET', paths.rollout(id))).body;
const stepAll = (fleet: SimVessel[]) => Promise.all(fleet.filter((v) => v.online).map((v) => v.step()));

async function untilState(c: Ctx, id: number, state: RolloutView['state'], timeoutMs = 30_000): Promise<RolloutShow> {
  return eventually(
    async () => {
      await stepAll(c.fleet);
      const s = await show(c, id);
      return s.rollout.state === state ? s : undefined;
    },
    timeoutMs,
    100,
  );
}

describe('rollouts in waves through the API', () => {
  it('a 5% canary passes, the next waves follow by themselves; a failing canary halts the next release', async () => {
    const c = await setup(20);
    await publishViaApi(c.hub, { app: 'sms', version: '2', sequence: 1 });
    const start = await api(c, 'POST', paths.rollouts(), {
      release: 'sms@2',
      target: 'all',
      waves: [5, 25, 100],
      minSuccessPercent: 99.5,
    });
    expect(start.status, JSON.stringify(start.body)).toBe(201);
    expect(start.body.waves.map((w: string[]) => w.length)).toEqual([1, 4, 15]);
    const id = start.body.id as number;
    const canary = start.body.waves[0][0] as string;
    // Only the canary is targeted until it reports healthy.
    await stepAll(c.fleet);
    const afterCanary = await show(c, id);
    expect(afterCanary.waves[0]!.vessels[0]).toMatchObject({ vessel: canary, outcome: 'installed-healthy' });
    expect(afterCanary.rollout.currentWave).toBeGreaterThanOrEqual(1);
    const done = await untilState(c, id, 'completed');
    expect(done.waves.map((w) => w.counts.succeeded)).toEqual([1, 4, 15]);
    expect(c.fleet.every((v) => v.running.get('sms') === '2')).toBe(true);

    // Release 3 fails its health gate on the canary: the rollout halts, the rest keep release 2.
    failing.add('sms@3');
    await publishViaApi(c.hub, { app: 'sms', version: '3', sequence: 2 });
    const bad = await api(c, 'POST', paths.rollouts(), {
      release: 'sms@3',
      target: 'all',
      waves: [5, 25, 100],
      minSuccessPercent: 99.5,
    });
    expect(bad.status).toBe(201);
    const halted = await untilState(c, bad.body.id, 'halted');
    expect(halted.rollout.reason).toBe(
      'wave 1: 1 of 1 finished vessels failed; the rollout needs at least 99.5% successes',
    );
    expect(halted.rollout.counts).toMatchObject({ total: 1, failed: 1 });
    expect(halted.waves[0]!.vessels[0]).toMatchObject({
      outcome: 'failed',
      failure: 'gate-failed',
      reason: expect.stringContaining('health gate failed'),
    });
    expect(halted.waves.slice(1).every((w) => w.vessels.every((v) => v.startedAt === null))).toBe(true);
    expect(c.fleet.filter((v) => v.running.get('sms') === '2')).toHaveLength(20);

    const metrics = await (await fetch(`${c.ref.url}/metrics`)).text();
    expect(metrics).toMatch(/tender_rollouts\{state="completed"\} 1/);
    expect(metrics).toMatch(/tender_rollouts\{state="halted"\} 1/);
    // Vessels per outcome of the halted rollout (the completed one's rows were superseded by it).
    expect(metrics).toMatch(new RegExp(`tender_rollout_vessels\\{rollout="${bad.body.id}",outcome="failed"\\} 1`));
    expect(metrics).toMatch(new RegExp(`tender_rollout_vessels\\{rollout="${bad.body.id}",outcome="pending"\\} 19`));
    expect(metrics).toMatch(/tender_rollout_events_total\{event="halt"\} 1/);
    expect(metrics).toMatch(/tender_rollout_events_total\{event="complete"\} 1/);
  }, 120_000);

  it('refuses bad input in one line and changes nothing', async () => {
    const c = await setup(2);
    await publishViaApi(c.hub, { app: 'sms', version: '2', sequence: 1 });
    const ok = { release: 'sms@2', target: 'all' };
    const cases: [unknown, number, string][] = [
      [{ ...ok, waves: [25, 5, 100] }, 400, '--waves must increase: 25% then 5%'],
      [{ ...ok, waves: [5, 25] }, 400, '--waves must end at 100%, not 25%'],
      [{ ...ok, minSuccessPercent: 150 }, 400, '--min-success: 150% is outside 0-100%'],
      [{ ...ok, maxFailuresPercent: -1 }, 400, '--max-failures: -1% is outside 0-100%'],
      [{ ...ok, canary: ['vessel:nobody'] }, 404, '--canary: no vessel named nobody'],
      [{ ...ok, release: 'sms@9' }, 404, 'no release sms@9 on the hub'],
    ];
    for (const [body, status, message] of cases) {
      const r = await api(c, 'POST', paths.rollouts(), body);
      expect([r.status, r.body.message], JSON.stringify(body)).toEqual([status, message]);
    }
    const w = await api(c, 'PUT', paths.windows(), { scope: 'group:fleet', spec: 'Mon-Thu 02:00-04:61 UTC' });
    expect([w.status, w.body.message]).toEqual([400, 'window "Mon-Thu 02:00-04:61 UTC": time "04:61" is out of range']);
    expect((await api(c, 'GET', paths.rollouts())).body.rollouts).toEqual([]);
    expect((await api(c, 'GET', paths.windows())).body.windows).toEqual([]);
    // Pausing a finished rollout: refused, the rollout as it was.
    const r = await api(c, 'POST', paths.rollouts(), ok);
    await untilState(c, r.body.id, 'completed');
    const before = await show(c, r.body.id);
    const p = await api(c, 'POST', paths.rolloutAction(r.body.id, 'pause'), {});
    expect(p.status).toBe(409);
    expect(p.body.message).not.toContain('\n');
    expect(p.body.message).toMatch(/completed/);
    expect(await show(c, r.body.id)).toEqual(before);
    expect((await api(c, 'POST', paths.rolloutAction(999, 'abort'), {})).body.message).toBe('no rollout 999');
  }, 60_000);

  it('pause, resume and abort hold across a hub restart mid-wave; a deadline is met by the timer alone', async () => {
    const c = await setup(10);
    await publishViaApi(c.hub, { app: 'sms', version: '2', sequence: 1 });
    const r = await api(c, 'POST', paths.rollouts(), {
      release: 'sms@2',
      target: 'all',
      waves: [10, 50, 100],
      waveDeadlineSeconds: 3600,
    });
    const id = r.body.id as number;
    expect((await api(c, 'POST', paths.rolloutAction(id, 'pause'), {})).body.state).toBe('paused');
    await stepAll(c.fleet);
    // The canary finished, but a paused rollout starts no wave.
    expect((await show(c, id)).rollout).toMatchObject({ state: 'paused', currentWave: 0 });

    // Restart: a new hub process on the same data; the plan stands where it was.
    await c.hub.app.close();
    const again = await buildHub({
      dataDir: c.hub.dataDir,
      ...(await c.hub.sameData()),
      now: () => c.clock.now,
      rolloutTickMs: 100,
    });
    onTestFinished(() => again.app.close());
    await again.app.listen({ host: '127.0.0.1', port: 0 });
    const a = again.app.server.address();
    c.ref.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    expect((await show(c, id)).rollout).toMatchObject({ state: 'paused', currentWave: 0 });
    expect((await api(c, 'POST', paths.rolloutAction(id, 'resume'), {})).body.state).toBe('active');
    const wave2 = await eventually(async () => ((await show(c, id)).rollout.currentWave === 1 ? true : undefined));
    expect(wave2).toBe(true);

    // Wave 2's vessels go offline; after the deadline the timer fails them and halts the rollout.
    const inWave2 = new Set((await show(c, id)).waves[1]!.vessels.map((v) => v.vessel));
    for (const v of c.fleet) if (inWave2.has(v.name)) v.online = false;
    c.clock.now += 3601_000;
    const halted = await eventually(async () => {
      const s = await show(c, id);
      return s.rollout.state === 'halted' ? s : undefined;
    }, 10_000);
    expect(halted.rollout.reason).toMatch(/^wave 2: /);
    expect(halted.waves[1]!.vessels.every((v) => v.outcome === 'failed' && v.failure === 'deadline-passed')).toBe(true);
    expect(halted.waves[1]!.vessels[0]!.reason).toBe("not done by the wave's deadline (1h)");

    // Abort after the restart too; an aborted rollout cannot be resumed.
    expect((await api(c, 'POST', paths.rolloutAction(id, 'abort'), {})).body.state).toBe('aborted');
    const res = await api(c, 'POST', paths.rolloutAction(id, 'resume'), {});
    expect(res.status).toBe(409);
  }, 60_000);
});
