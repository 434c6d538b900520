import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HubStore } from '../../hub/store/hub-store.js';
import { DEFAULT_RULES, type WaveRules } from '../../hub/rollout/waves.js';
import type { RolloutOutcomeEvent } from '../../shared/protocol/rollout-outcome.js';
import { addVessel, race, rejectsWith, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const audit = (action: string) => ({ actor: 'ops:ci', action, detail: { n: 1 } });
const release = (app: string, version: string, sequence: number) => ({
  app,
  version,
  sequence,
  envelope: Buffer.from(JSON.stringify({ app, version, sequence, pad: randomBytes(8).toString('hex') })),
  publishedBy: 'ops:ci',
});
const rules = (waves: number[], over: Partial<WaveRules> = {}): WaveRules => ({ ...DEFAULT_RULES, waves, ...over });
const ev = (over: Partial<RolloutOutcomeEvent>): RolloutOutcomeEvent => ({
  app: 'sms',
  version: '2',
  rolloutId: null,
  outcome: 'installed-healthy',
  ...over,
});

async function fleet(store: HubStore, n = 10, groups: string[] = ['north']) {
  const vessels = [];
  for (let i = 0; i < n; i++) vessels.push(await addVessel(store, `ship-${String(i).padStart(2, '0')}`, groups));
  const r1 = (await store.releases.add(release('sms', '1', 1), T0)).release;
  const r2 = (await store.releases.add(release('sms', '2', 2), T0)).release;
  const other = (await store.releases.add(release('nav', '7', 1), T0)).release;
  return { vessels, r1, r2, other };
}

const outcomes = async (store: HubStore, id: number) =>
  Object.fromEntries((await store.rollouts.members(id)).map((m) => [m.vessel, m.outcome]));

export function rolloutTests(open: OpenStore): void {
  describe('rollouts in waves', () => {
    it('assigns waves with the canaries first and targets only wave 0 until the next wave starts', async () => {
      const { store, another } = await open();
      const { vessels, r2 } = await fleet(store);
      const s = await store.rollouts.start(
        { releaseId: r2.id, target: 'all', createdBy: 'ops:x', rules: rules([10, 50, 100]), canary: ['ship-07'] },
        T0 + 1,
        audit('rollout.start'),
      );
      expect(s.waves.map((w) => w.length)).toEqual([1, 4, 5]);
      expect(s.waves[0]).toEqual(['ship-07']);
      const m = await store.rollouts.members(s.id);
      expect(m.filter((x) => x.startedAt !== null).map((x) => x.vessel)).toEqual(['ship-07']);
      const v7 = vessels[7]!;
      expect(await store.rollouts.targetsOf(v7.id)).toEqual([
        { app: 'sms', releaseId: r2.id, rolloutId: s.id, setAt: T0 + 1 },
      ]);
      expect(await store.rollouts.targetsOf(vessels[0]!.id)).toEqual([]);
      expect(await store.rollouts.mayFetch(vessels[0]!.id, r2.id)).toBe(false);
      // Two hubs ticking at once (two stores on one database): exactly one starts wave 1, audited once;
      // wave 2 cannot start before it.
      const other = await another();
      expect(await store.rollouts.startWave(s.id, 2, T0 + 2)).toBeNull();
      const both = await Promise.all(
        [store, other, store, other].map((h) => h.rollouts.startWave(s.id, 1, T0 + 3, audit('rollout.wave'))),
      );
      expect(both.filter((x) => x !== null)).toEqual([s.waves[1]]);
      expect((await store.audit.list({ limit: 10 })).filter((a) => a.action === 'rollout.wave')).toHaveLength(1);
      const r = (await store.rollouts.get(s.id))!;
      expect(r).toMatchObject({ currentWave: 1, waveStartedAt: T0 + 3, state: 'active', vessels: 5 });
      expect(await store.rollouts.mayFetch(vessels.find((v) => v.name === s.waves[1]![0])!.id, r2.id)).toBe(true);
    });

    it('refuses a canary outside the target and a target that matches none, creating nothing', async () => {
      const { store } = await open();
      const { r2 } = await fleet(store, 3);
      await rejectsWith(
        store.rollouts.start(
          { releaseId: r2.id, target: 'group:north', createdBy: 'x', canary: ['ghost'] },
          T0,
          audit('rollout.start'),
        ),
        'bad_rollout',
      );
      await rejectsWith(
        store.rollouts.start({ releaseId: r2.id, target: 'group:south', createdBy: 'x' }, T0),
        'empty_target',
      );
      expect(await store.rollouts.list({ limit: 10 })).toEqual([]);
      expect(await store.audit.list({ limit: 10 })).toEqual([]);
    });

    it('applies outcomes in order: a late copy of an earlier event changes nothing', async () => {
      const { store } = await open();
      const { vessels, r2 } = await fleet(store, 2);
      const s = await store.rollouts.start({ releaseId: r2.id, target: 'all', createdBy: 'x' }, T0);
      const v = vessels[0]!;
      const at = (seq: number, epoch = 'e1') => ({ epoch, seq });
      expect(
        await store.rollouts.recordOutcome(
          v.id,
          ev({ outcome: 'downloading', progress: { done: 1, total: 9 } }),
          at(5),
          T0 + 1,
        ),
      ).toBe(s.id);
      expect(await store.rollouts.recordOutcome(v.id, ev({ rolloutId: s.id }), at(9), T0 + 2)).toBe(s.id);
      expect(await store.rollouts.recordOutcome(v.id, ev({ outcome: 'downloading' }), at(7), T0 + 3)).toBeUndefined();
      // Another app, another version, another rollout id: not this row.
      expect(await store.rollouts.recordOutcome(v.id, ev({ app: 'nav' }), at(10), T0 + 4)).toBeUndefined();
      expect(await store.rollouts.recordOutcome(v.id, ev({ version: '1' }), at(11), T0 + 4)).toBeUndefined();
      expect(await store.rollouts.recordOutcome(v.id, ev({ rolloutId: s.id + 5 }), at(12), T0 + 4)).toBeUndefined();
      const m = (await store.rollouts.members(s.id)).find((x) => x.vesselId === v.id)!;
      expect(m).toMatchObject({ outcome: 'installed-healthy', progress: null, reportedAt: T0 + 2 });
      // A fresh outbox (new epoch) starts its sequence again.
      await store.rollouts.recordOutcome(
        v.id,
        ev({ outcome: 'failed', failure: 'rolled-back', reason: 'crash' }),
        at(1, 'e2'),
        T0 + 5,
      );
      expect((await store.rollouts.members(s.id)).find((x) => x.vesselId === v.id)).toMatchObject({
        outcome: 'failed',
        failure: 'rolled-back',
        reason: 'crash',
      });
    });

    it('lets the later rollout of an app to a vessel win; the earlier records it and never starts it', async () => {
      const { store } = await open();
      const { vessels, r1, r2, other } = await fleet(store, 4);
      const first = await store.rollouts.start(
        { releaseId: r1.id, target: 'all', createdBy: 'x', rules: rules([25, 100]) },
        T0,
      );
      const nav = await store.rollouts.start({ releaseId: other.id, target: 'all', createdBy: 'x' }, T0 + 1);
      const second = await store.rollouts.start({ releaseId: r2.id, target: 'vessel:ship-01', createdBy: 'x' }, T0 + 2);
      const m = await store.rollouts.members(first.id);
      expect(m.find((x) => x.vessel === 'ship-01')!.supersededBy).toBe(second.id);
      expect(m.filter((x) => x.supersededBy === null)).toHaveLength(3);
      // Another app on the same vessel is untouched: targets are per (vessel, app).
      expect((await store.rollouts.members(nav.id)).every((x) => x.supersededBy === null)).toBe(true);
      // Metrics count the vessel the later rollout took over apart, so the first rollout's total still adds up.
      expect(await store.rollouts.outcomeCounts([first.id, second.id])).toEqual([
        { rolloutId: first.id, outcome: 'pending', n: 3 },
        { rolloutId: first.id, outcome: 'superseded', n: 1 },
        { rolloutId: second.id, outcome: 'pending', n: 1 },
      ]);
      await store.rollouts.startWave(first.id, 1, T0 + 3);
      const v1 = vessels[1]!;
      expect(await store.rollouts.targetsOf(v1.id)).toEqual([
        { app: 'nav', releaseId: other.id, rolloutId: nav.id, setAt: T0 + 1 },
        { app: 'sms', releaseId: r2.id, rolloutId: second.id, setAt: T0 + 2 },
      ]);
    });

    it('marks the unfinished vessels of a wave failed when its deadline passes', async () => {
      const { store } = await open();
      const { vessels, r2 } = await fleet(store, 3);
      const s = await store.rollouts.start({ releaseId: r2.id, target: 'all', createdBy: 'x' }, T0);
      await store.rollouts.recordOutcome(vessels[0]!.id, ev({}), { epoch: 'e', seq: 1 }, T0 + 1);
      expect(await store.rollouts.expire(s.id, 0, 'not done by the deadline', T0 + 2)).toBe(2);
      expect(await outcomes(store, s.id)).toEqual({
        'ship-00': 'installed-healthy',
        'ship-01': 'failed',
        'ship-02': 'failed',
      });
      expect((await store.rollouts.members(s.id))[1]).toMatchObject({
        failure: 'deadline-passed',
        reason: 'not done by the deadline',
      });
    });

    it("adds a vessel that joins a targeted group later to the open rollout's last wave", async () => {
      const { store } = await open();
      const { r2 } = await fleet(store, 2);
      const s = await store.rollouts.start(
        { releaseId: r2.id, target: 'group:north', createdBy: 'x', rules: rules([50, 100]) },
        T0,
      );
      const late = await addVessel(store, 'late', ['north']);
      await addVessel(store, 'elsewhere', ['south']);
      expect(await store.rollouts.enlist(s.id, T0 + 1)).toEqual(['late']);
      expect(await store.rollouts.enlist(s.id, T0 + 2)).toEqual([]);
      expect(await store.rollouts.targetsOf(late.id)).toEqual([]);
      await store.rollouts.startWave(s.id, 1, T0 + 3);
      expect(await store.rollouts.targetsOf(late.id)).toMatchObject([{ releaseId: r2.id, rolloutId: s.id }]);
      const later = await addVessel(store, 'later', ['north']);
      expect(await store.rollouts.enlist(s.id, T0 + 4)).toEqual(['later']);
      expect(await store.rollouts.targetsOf(later.id)).toMatchObject([{ releaseId: r2.id, setAt: T0 + 4 }]);
    });

    it('pauses, resumes, aborts; finished rollouts refuse with their state and change nothing', async () => {
      const { store } = await open();
      const { r2 } = await fleet(store, 2);
      const s = await store.rollouts.start(
        { releaseId: r2.id, target: 'all', createdBy: 'x', rules: rules([50, 100]) },
        T0,
      );
      const pause = { from: ['active'] as const, to: 'paused' as const, verb: 'paused' };
      expect(await store.rollouts.transition(s.id, pause, T0 + 1, audit('rollout.pause'))).toMatchObject({
        state: 'paused',
      });
      expect(await store.rollouts.startWave(s.id, 1, T0 + 2)).toBeNull();
      expect(await store.rollouts.finish(s.id, 'completed', { reason: null, counts: null }, T0 + 2)).toBe(false);
      await store.rollouts.transition(s.id, { from: ['paused'], to: 'active', verb: 'resumed' }, T0 + 3);
      const counts = { total: 1, succeeded: 0, failed: 1, held: 0, unfinished: 0 };
      const fin = await race(
        [0, 1].map(() => store.rollouts.finish(s.id, 'halted', { reason: 'wave 1: bad', counts }, T0 + 4)),
      );
      expect(fin.won.filter(Boolean)).toHaveLength(1);
      expect(await store.rollouts.get(s.id)).toMatchObject({ state: 'halted', reason: 'wave 1: bad', counts });
      await store.rollouts.transition(
        s.id,
        { from: ['active', 'paused', 'halted'], to: 'aborted', verb: 'aborted' },
        T0 + 5,
      );
      await rejectsWith(store.rollouts.transition(s.id, pause, T0 + 6, audit('rollout.pause')), 'bad_state');
      await rejectsWith(store.rollouts.transition(s.id + 9, pause, T0 + 6), 'not_found');
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual(['rollout.pause']);
      expect(await store.rollouts.stateCounts()).toEqual([{ state: 'aborted', n: 1 }]);
      expect(await store.rollouts.outcomeCounts([s.id])).toEqual([{ rolloutId: s.id, outcome: 'pending', n: 2 }]);
      expect(await store.rollouts.open()).toEqual([]);
    });

    it('stores a rollback directive with its rollout, refusing a counter not above the latest', async () => {
      const { store } = await open();
      const { r1 } = await fleet(store, 2);
      const directive = (counter: number, expiresAt = T0 + 1000) => ({
        app: 'sms',
        version: '1',
        counter,
        envelope: Buffer.from(`{"signed":${counter}}`),
        targets: { all: true },
        expiresAt,
      });
      expect(await store.directives.nextCounter('sms')).toBe(1);
      const start = (counter: number, expiresAt?: number) =>
        store.rollouts.start(
          {
            releaseId: r1.id,
            target: 'all',
            createdBy: 'x',
            kind: 'rollback',
            directive: directive(counter, expiresAt),
          },
          T0,
        );
      const s = await start(3);
      expect(await store.rollouts.get(s.id)).toMatchObject({ kind: 'rollback', directiveId: expect.any(Number) });
      await rejectsWith(start(3), 'stale_counter');
      await rejectsWith(start(2), 'stale_counter');
      expect(await store.rollouts.list({ limit: 10 })).toHaveLength(1);
      expect(await store.directives.nextCounter('sms')).toBe(4);
      await start(4, T0 + 10);
      expect((await store.directives.live(T0 + 500, 10)).map((d) => d.counter)).toEqual([3]);
      const d = (await store.directives.get((await store.rollouts.get(s.id))!.directiveId!))!;
      expect(d).toMatchObject({ app: 'sms', version: '1', counter: 3, targets: { all: true } });
      expect(d.envelope.toString()).toBe('{"signed":3}');
    });
  });

  describe('maintenance windows', () => {
    it("sets, lists and clears windows; a vessel's own wins over its groups'", async () => {
      const { store } = await open();
      await store.windows.set(
        { scope: 'group:north', spec: 'Mon-Thu 02:00-04:00 UTC', setBy: 'ops:x' },
        T0,
        audit('window.set'),
      );
      await store.windows.set({ scope: 'group:alpha', spec: 'daily 01:00-02:00', setBy: 'ops:x' }, T0);
      expect(await store.windows.forVessel('a', ['north'])).toEqual({
        spec: 'Mon-Thu 02:00-04:00 UTC',
        source: 'group:north',
      });
      expect(await store.windows.forVessel('a', ['north', 'alpha'])).toEqual({
        spec: 'daily 01:00-02:00',
        source: 'group:alpha',
      });
      await store.windows.set({ scope: 'vessel:a', spec: 'Sat 10:00-12:00', setBy: 'ops:y' }, T0 + 1);
      await store.windows.set({ scope: 'vessel:a', spec: 'Sun 10:00-12:00', setBy: 'ops:y' }, T0 + 2);
      expect(await store.windows.forVessel('a', ['north'])).toEqual({ spec: 'Sun 10:00-12:00', source: 'vessel:a' });
      expect(await store.windows.forVessel('b', [])).toBeNull();
      expect((await store.windows.list()).map((w) => [w.scope, w.setAt])).toEqual([
        ['group:alpha', T0],
        ['group:north', T0],
        ['vessel:a', T0 + 2],
      ]);
      expect(await store.windows.clear('vessel:a', T0 + 3, audit('window.clear'))).toBe(true);
      expect(await store.windows.clear('vessel:a', T0 + 3, audit('window.clear'))).toBe(false);
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual(['window.set', 'window.clear']);
    });
  });

  describe('download settings', () => {
    it("sets, lists and clears settings; field by field a vessel's own win over its groups'", async () => {
      const { store } = await open();
      await store.settings.set(
        {
          scope: 'group:north',
          settings: { releaseBytesPerSecond: 1000, downloadOnlyWhenCheap: true },
          setBy: 'ops:x',
        },
        T0,
        audit('settings.set'),
      );
      await store.settings.set({ scope: 'vessel:a', settings: { releaseBytesPerSecond: 5 }, setBy: 'ops:x' }, T0 + 1);
      expect(await store.settings.forVessel('a', ['north'])).toEqual({
        releaseBytesPerSecond: 5,
        downloadOnlyWhenCheap: true,
      });
      expect(await store.settings.forVessel('b', ['north'])).toEqual({
        releaseBytesPerSecond: 1000,
        downloadOnlyWhenCheap: true,
      });
      expect(await store.settings.forVessel('c', [])).toBeUndefined();
      expect((await store.settings.list()).map((w) => [w.scope, w.setAt])).toEqual([
        ['group:north', T0],
        ['vessel:a', T0 + 1],
      ]);
      expect(await store.settings.clear('group:north', T0 + 3, audit('settings.clear'))).toBe(true);
      expect(await store.settings.clear('group:north', T0 + 3, audit('settings.clear'))).toBe(false);
      expect(await store.settings.forVessel('b', ['north'])).toBeUndefined();
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual(['settings.set', 'settings.clear']);
    });
  });
}
