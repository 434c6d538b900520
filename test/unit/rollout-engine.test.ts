import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createRolloutEngine, type RolloutEngine } from '../../hub/rollout/engine.js';
import { DEFAULT_RULES, type WaveRules } from '../../hub/rollout/waves.js';
import type { HubStore, TelemetryRecord } from '../../hub/store/hub-store.js';
import { openSqliteHubStore } from '../../hub/store/sqlite/sqlite-hub-store.js';
import type { RolloutOutcomeEvent } from '../../shared/protocol/rollout-outcome.js';
import { cleanup } from '../helpers/cleanup.js';
import { tempDir } from '../helpers/tmp.js';

const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;

interface World {
  dir: string;
  store: HubStore;
  engine: RolloutEngine;
  clock: { t: number };
  events: string[];
  ids: Map<string, string>;
  seq: Map<string, number>;
  /** The vessel reports an outcome through its telemetry, as the agent does. */
  report(vessel: string, rolloutId: number, outcome: RolloutOutcomeEvent['outcome'], more?: object): Promise<void>;
  reopen(): Promise<void>;
}

async function world(n = 20, groups: (i: number) => string[] = () => ['fleet']): Promise<World> {
  const dir = tempDir('tender-engine-');
  const clock = { t: T0 };
  const events: string[] = [];
  const w = { dir, clock, events, ids: new Map(), seq: new Map() } as unknown as World;
  const open = () => {
    w.store = openSqliteHubStore(dir);
    cleanup(() => w.store.close());
    w.engine = createRolloutEngine({
      store: w.store,
      now: () => clock.t,
      onEvent: (kind, r) => events.push(`${r.id}:${kind}`),
    });
  };
  open();
  for (let i = 0; i < n; i++) {
    const name = `ship-${String(i).padStart(2, '0')}`;
    w.ids.set(name, (await w.store.vessels.create({ name, groups: groups(i) }, T0)).id);
  }
  for (const [version, sequence] of [
    ['1.0', 1],
    ['2.0', 2],
    ['3.0', 3],
  ] as const)
    await w.store.releases.add({ app: 'sms', version, sequence, envelope: randomBytes(40), publishedBy: 'ops:ci' }, T0);
  w.report = async (vessel, rolloutId, outcome, more = {}) => {
    const r = (await w.store.rollouts.get(rolloutId))!;
    const seq = (w.seq.get(vessel) ?? 0) + 1;
    w.seq.set(vessel, seq);
    const body: RolloutOutcomeEvent = { app: r.app, version: r.version, rolloutId, outcome, ...more };
    const rec: TelemetryRecord = {
      kind: 'event',
      seq,
      ts: clock.t,
      type: 'rollout.outcome',
      data: JSON.stringify(body),
    };
    await w.store.telemetry.ingest(w.ids.get(vessel)!, { epoch: 'e1', backlog: 0, drops: {} }, [rec], 100, clock.t);
    await w.engine.ingest(w.ids.get(vessel)!, 'e1', [rec]);
  };
  w.reopen = async () => {
    await w.engine.stop();
    await w.store.close();
    open();
  };
  return w;
}

const rules = (over: Partial<WaveRules>): WaveRules => ({ ...DEFAULT_RULES, waves: [5, 25, 100], ...over });
const start = (w: World, release: string, over: Partial<WaveRules> = {}, canary: string[] = []) =>
  w.engine.start({ release, target: 'all', rules: rules(over), canary, actor: 'ops:test' });
const waveOf = async (w: World, id: number, wave: number) =>
  (await w.store.rollouts.members(id)).filter((m) => m.wave === wave).map((m) => m.vessel);
const targeted = async (w: World, release: string) => {
  const rel = (await w.store.releases.find(release))!;
  const out: string[] = [];
  for (const [name, id] of w.ids)
    if ((await w.store.rollouts.targetsOf(id)).some((t) => t.releaseId === rel.id)) out.push(name);
  return out.sort();
};

describe('the rollout engine', () => {
  it('starts with a 5% canary, then 25%, then everyone, as each wave succeeds', async () => {
    const w = await world(20);
    const s = await start(w, 'sms@2.0', { threshold: { kind: 'min-success', percent: 99.5 } }, ['vessel:ship-13']);
    expect(s.waves.map((x) => x.length)).toEqual([1, 4, 15]);
    expect(s.waves[0]).toEqual(['ship-13']);
    expect(await targeted(w, 'sms@2.0')).toEqual(['ship-13']);
    await w.report('ship-13', s.id, 'downloading', { progress: { done: 10, total: 100 } });
    expect((await w.store.rollouts.get(s.id))!.currentWave).toBe(0);
    await w.report('ship-13', s.id, 'installed-healthy');
    expect((await w.store.rollouts.get(s.id))!.currentWave).toBe(1);
    expect(await targeted(w, 'sms@2.0')).toEqual([...s.waves[0]!, ...s.waves[1]!].sort());
    for (const v of s.waves[1]!) await w.report(v, s.id, 'installed-healthy');
    expect(await targeted(w, 'sms@2.0')).toHaveLength(20);
    for (const v of s.waves[2]!) await w.report(v, s.id, 'installed-healthy');
    expect(await w.store.rollouts.get(s.id)).toMatchObject({ state: 'completed', currentWave: 2 });
    expect(w.events).toEqual([`${s.id}:wave-start`, `${s.id}:wave-start`, `${s.id}:wave-start`, `${s.id}:complete`]);
    // The choice of who goes first is stable: the same fleet gives the same waves.
    const again = await start(w, 'sms@3.0');
    const third = await w.engine.start({ release: 'sms@1.0', target: 'all', rules: rules({}), canary: [], actor: 'x' });
    expect(await waveOf(w, third.id, 0)).toHaveLength(1);
    expect(await waveOf(w, third.id, 0)).toEqual(await waveOf(w, again.id, 0));
    expect(await waveOf(w, third.id, 1)).toEqual(await waveOf(w, again.id, 1));
    // The later rollout of the app won on every vessel: the earlier one records it.
    expect((await w.store.rollouts.members(again.id)).every((m) => m.supersededBy === third.id)).toBe(true);
  });

  it('halts when the canary fails its gate, with the reason and counts; later waves keep their release', async () => {
    const w = await world(20);
    const s = await start(w, 'sms@2.0', { threshold: { kind: 'min-success', percent: 99.5 } });
    const canary = s.waves[0]![0]!;
    await w.report(canary, s.id, 'failed', { failure: 'gate-failed', reason: 'portal: /health answered 500' });
    const r = (await w.store.rollouts.get(s.id))!;
    expect(r.state).toBe('halted');
    expect(r.reason).toBe('wave 1: 1 of 1 finished vessels failed; the rollout needs at least 99.5% successes');
    expect(r.counts).toEqual({ total: 1, succeeded: 0, failed: 1, held: 0, unfinished: 0 });
    expect(await targeted(w, 'sms@2.0')).toEqual([canary]);
    w.clock.t += 10 * HOUR;
    await w.engine.tick();
    expect(await targeted(w, 'sms@2.0')).toEqual([canary]);
    const shown = (await w.engine.show(s.id))!;
    expect(shown.waves.map((x) => [x.started, x.counts.total])).toEqual([
      [true, 1],
      [false, 4],
      [false, 15],
    ]);
    expect(shown.waves[0]!.vessels[0]).toMatchObject({ outcome: 'failed', failure: 'gate-failed' });
    expect(w.events).toEqual([`${s.id}:wave-start`, `${s.id}:halt`]);
  });

  it('proceeds on --wave-quorum with vessels offline; they get the release when they return', async () => {
    const w = await world(20);
    const s = await start(w, 'sms@2.0', { waves: [25, 100], quorumPercent: 60, minDone: 3 });
    const first = s.waves[0]!;
    expect(first).toHaveLength(5);
    // Two of five at sea: three finish, which is the quorum (60%).
    await w.report(first[0]!, s.id, 'installed-healthy');
    await w.report(first[1]!, s.id, 'installed-healthy');
    expect((await w.store.rollouts.get(s.id))!.currentWave).toBe(0);
    await w.report(first[2]!, s.id, 'installed-healthy');
    expect((await w.store.rollouts.get(s.id))!.currentWave).toBe(1);
    // The offline vessels kept their target: they fetch the release when the link returns, and report.
    expect(await targeted(w, 'sms@2.0')).toHaveLength(20);
    w.clock.t += 48 * HOUR;
    await w.report(first[3]!, s.id, 'installed-healthy');
    expect((await w.store.rollouts.members(s.id)).find((m) => m.vessel === first[3])!.outcome).toBe(
      'installed-healthy',
    );
  });

  it('fails what a wave deadline leaves unfinished, and halts below the threshold', async () => {
    const w = await world(4);
    const s = await start(w, 'sms@2.0', { waves: [50, 100], deadlineMs: 72 * HOUR, minDone: 1 });
    await w.report(s.waves[0]![0]!, s.id, 'installed-healthy');
    w.clock.t += 71 * HOUR;
    await w.engine.tick();
    expect((await w.store.rollouts.get(s.id))!.state).toBe('active');
    w.clock.t += 2 * HOUR;
    await w.engine.tick();
    const r = (await w.store.rollouts.get(s.id))!;
    expect(r).toMatchObject({ state: 'halted', counts: { succeeded: 1, failed: 1 } });
    expect((await w.store.rollouts.members(s.id)).find((m) => m.vessel === s.waves[0]![1])).toMatchObject({
      outcome: 'failed',
      failure: 'deadline-passed',
      reason: "not done by the wave's deadline (72h)",
    });
  });

  it('keeps pause, resume and abort across a restart of the hub in mid-wave', async () => {
    const w = await world(20);
    const s = await start(w, 'sms@2.0');
    await w.engine.pause(s.id, 'ops:a');
    await w.reopen();
    await w.report(s.waves[0]![0]!, s.id, 'installed-healthy');
    await w.engine.tick();
    expect(await w.store.rollouts.get(s.id)).toMatchObject({ state: 'paused', currentWave: 0 });
    await w.reopen();
    expect(await w.engine.resume(s.id, 'ops:a')).toMatchObject({ state: 'active', currentWave: 1 });
    await w.reopen();
    for (const v of s.waves[1]!.slice(0, 2)) await w.report(v, s.id, 'installed-healthy');
    await w.engine.abort(s.id, 'ops:b');
    await w.reopen();
    for (const v of s.waves[1]!.slice(2)) await w.report(v, s.id, 'installed-healthy');
    await w.engine.tick();
    expect(await w.store.rollouts.get(s.id)).toMatchObject({
      state: 'aborted',
      currentWave: 1,
      reason: 'aborted by ops:b',
    });
    expect(await targeted(w, 'sms@2.0')).toHaveLength(5);
    await expect(w.engine.pause(s.id, 'ops:a')).rejects.toThrow(
      `rollout ${s.id} is aborted: only a rollout that is active can be paused`,
    );
    expect((await w.store.audit.list({ limit: 50 })).map((a) => a.action)).toEqual([
      'rollout.start',
      'rollout.pause',
      'rollout.resume',
      'rollout.wave-start',
      'rollout.abort',
    ]);
  });

  it('gives a vessel that joins a targeted group later the active rollout', async () => {
    const w = await world(3);
    const s = await w.engine.start({
      release: 'sms@2.0',
      target: 'group:fleet',
      rules: rules({ waves: [100] }),
      canary: [],
      actor: 'x',
    });
    const late = await w.store.vessels.create({ name: 'late', groups: ['fleet'] }, T0 + 5);
    await w.engine.tick();
    expect(await w.store.rollouts.targetsOf(late.id)).toMatchObject([{ rolloutId: s.id }]);
  });

  it('refuses bad rules, unknown canaries and releases with one line, creating nothing', async () => {
    const w = await world(3, (i) => (i === 0 ? ['fleet', 'first'] : ['fleet']));
    const attempts: [Promise<unknown>, string][] = [
      [start(w, 'sms@2.0', { waves: [25, 5, 100] }), '--waves must increase: 25% then 5%'],
      [start(w, 'sms@2.0', { waves: [5, 25] }), '--waves must end at 100%, not 25%'],
      [start(w, 'sms@2.0', { threshold: { kind: 'max-failures', percent: 120 } }), '--max-failures: 120% is outside'],
      [start(w, 'sms@2.0', {}, ['vessel:ghost']), '--canary: no vessel named ghost'],
      [start(w, 'sms@2.0', {}, ['group:none']), '--canary: group none has no vessel'],
      [start(w, 'sms@9.9'), 'no release sms@9.9 on the hub'],
    ];
    for (const [p, message] of attempts) await expect(p).rejects.toThrow(message);
    expect(await w.store.rollouts.list({ limit: 10 })).toEqual([]);
    // A canary group's vessels go first.
    const s = await start(w, 'sms@2.0', { waves: [50, 100] }, ['group:first']);
    expect(s.waves[0]![0]).toBe('ship-00');
  });
});
