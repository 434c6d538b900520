import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HubStore } from '../../hub/store/hub-store.js';
import { DEFAULT_RULES } from '../../hub/rollout/waves.js';
import { addVessel, race, rejectsWith, sha256, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const audit = (action: string) => ({ actor: 'ops:ci:t9', action, detail: { n: 1 } });
const root = (version: number) => ({
  version,
  envelope: Buffer.from(`{"root":${version},"r":"${randomBytes(4).toString('hex')}"}`),
  expires: `2030-01-0${version}T00:00:00Z`,
});
const release = (app: string, version: string, sequence: number) => ({
  app,
  version,
  sequence,
  envelope: Buffer.from(JSON.stringify({ app, version, sequence, pad: randomBytes(8).toString('hex') })),
  publishedBy: 'ops:ci',
});
const actions = async (store: HubStore) => (await store.audit.list({ limit: 100 })).map((a) => a.action);

export function catalogueTests(open: OpenStore): void {
  describe('ops tokens', () => {
    it('stores tokens by hash, lists them oldest first and revokes them once', async () => {
      const { store } = await open();
      await store.opsTokens.create(
        { id: 'b'.repeat(16), tokenHash: sha256('s2'), role: 'viewer', name: 'late' },
        T0 + 1,
      );
      await store.opsTokens.create(
        { id: 'a'.repeat(16), tokenHash: sha256('s1'), role: 'admin', name: 'first' },
        T0,
        audit('token.create'),
      );
      expect(await store.opsTokens.get('a'.repeat(16))).toEqual({
        id: 'a'.repeat(16),
        tokenHash: sha256('s1'),
        role: 'admin',
        name: 'first',
        createdAt: T0,
        revokedAt: null,
        expiresAt: null,
      });
      expect((await store.opsTokens.list()).map((t) => t.name)).toEqual(['first', 'late']);
      expect(await store.opsTokens.revoke('a'.repeat(16), T0 + 5, audit('token.revoke'))).toBe(true);
      expect(await store.opsTokens.revoke('a'.repeat(16), T0 + 6)).toBe(false);
      expect(await store.opsTokens.revoke('c'.repeat(16), T0 + 6)).toBe(false);
      expect((await store.opsTokens.get('a'.repeat(16)))!.revokedAt).toBe(T0 + 5);
      expect(await store.opsTokens.get('c'.repeat(16))).toBeUndefined();
      expect(await actions(store)).toEqual(['token.create', 'token.revoke']);
    });
  });

  describe('roots', () => {
    it(
      'keeps the chain: the first root, then exactly the next version, the same bytes ' + 'again changing nothing',
      async () => {
        const { store } = await open();
        expect(await store.roots.latest()).toBeUndefined();
        const [r1, r2] = [root(1), root(2)];
        expect(await store.roots.add(r1, T0, audit('root.push'))).toEqual({ created: true });
        expect(await store.roots.add(r1, T0 + 1)).toEqual({ created: false });
        await rejectsWith(store.roots.add({ ...root(1) }, T0 + 2, audit('x')), 'root_conflict');
        await rejectsWith(store.roots.add(root(3), T0 + 2, audit('x')), 'root_gap');
        expect(await store.roots.add(r2, T0 + 3)).toEqual({ created: true });
        await rejectsWith(store.roots.add({ ...root(1), version: 1 }, T0 + 4), 'root_conflict');
        expect(await store.roots.latest()).toEqual({ ...r2, addedAt: T0 + 3 });
        expect(await store.roots.get(1)).toEqual(r1.envelope);
        expect(await store.roots.get(3)).toBeUndefined();
        expect(await store.roots.list()).toEqual([
          { version: 1, expires: r1.expires, addedAt: T0 },
          { version: 2, expires: r2.expires, addedAt: T0 + 3 },
        ]);
        expect(await actions(store)).toEqual(['root.push']);
      },
    );

    it('refuses a root older than the latest it does not hold', async () => {
      const { store } = await open();
      await store.roots.add(root(5), T0);
      await rejectsWith(store.roots.add(root(4), T0), 'stale_root');
    });

    it('lets one of two hubs add the next root; the other, with other bytes, is refused', async () => {
      const { store, another } = await open();
      const other = await another();
      await store.roots.add(root(1), T0);
      const [a, b] = [root(2), root(2)];
      const r = await race([store.roots.add(a, T0), other.roots.add(b, T0), store.roots.add(a, T0)]);
      const kept = (await store.roots.latest())!;
      expect(kept.version).toBe(2);
      const winner = kept.envelope.equals(a.envelope) ? 'a' : 'b';
      // a was offered twice: if it won, one call created it and the repeat found it; if b won, both a's fail.
      expect(r.won.filter((x) => x.created)).toHaveLength(1);
      expect(r.codes).toEqual(winner === 'a' ? ['root_conflict'] : ['root_conflict', 'root_conflict']);
    });
  });

  describe('releases', () => {
    it('stores a release once; a retried publish finds it, other bytes under its version are refused', async () => {
      const { store } = await open();
      const r = release('sms', '1.0.0', 1);
      const first = await store.releases.add(r, T0, audit('release.publish'));
      expect(first).toEqual({
        created: true,
        release: {
          id: first.release.id,
          app: 'sms',
          version: '1.0.0',
          sequence: 1,
          createdAt: T0,
          publishedBy: 'ops:ci',
        },
      });
      expect(await store.releases.add(r, T0 + 1)).toEqual({ created: false, release: first.release });
      await rejectsWith(store.releases.add(release('sms', '1.0.0', 1), T0 + 2, audit('x')), 'exists');
      await rejectsWith(store.releases.add(release('sms', '1.0.1', 1), T0 + 2, audit('x')), 'stale_sequence');
      await rejectsWith(store.releases.add(release('sms', '0.9.0', 0), T0 + 2), 'stale_sequence');
      expect(await store.releases.envelope(first.release.id)).toEqual(r.envelope);
      expect(await store.releases.get(first.release.id)).toEqual(first.release);
      expect(await store.releases.get(first.release.id + 1000)).toBeUndefined();
      expect(await store.releases.envelope(first.release.id + 1000)).toBeUndefined();
      expect(await actions(store)).toEqual(['release.publish']);
    });

    it('numbers sequences per app and finds releases by app@version or an unambiguous version', async () => {
      const { store } = await open();
      expect(await store.releases.nextSequence('sms')).toBe(1);
      const a = (await store.releases.add(release('sms', '1.0.0', 1), T0)).release;
      await store.releases.add(release('sms', '1.1.0', 7), T0);
      const c = (await store.releases.add(release('crm', '1.0.0', 1), T0)).release;
      const d = (await store.releases.add(release('crm', '2.0.0', 2), T0)).release;
      expect(await store.releases.nextSequence('sms')).toBe(8);
      expect(await store.releases.nextSequence('crm')).toBe(3);
      expect(await store.releases.find('sms@1.0.0')).toEqual(a);
      expect(await store.releases.find('crm@1.0.0')).toEqual(c);
      expect(await store.releases.find('2.0.0')).toEqual(d);
      expect(await store.releases.find('sms@2.0.0')).toBeUndefined();
      expect(await store.releases.find('3.0.0')).toBeUndefined();
      await rejectsWith(store.releases.find('1.0.0'), 'ambiguous');
    });

    it('lists by app, newest sequence first, within the limit', async () => {
      const { store } = await open();
      for (const [app, v, s] of [
        ['sms', '1', 1],
        ['crm', '1', 1],
        ['sms', '2', 2],
        ['crm', '2', 2],
        ['sms', '3', 3],
      ] as const)
        await store.releases.add(release(app, v, s), T0);
      const refs = async (q: { limit: number; app?: string }) =>
        (await store.releases.list(q)).map((r) => `${r.app}@${r.version}`);
      expect(await refs({ limit: 10 })).toEqual(['crm@2', 'crm@1', 'sms@3', 'sms@2', 'sms@1']);
      expect(await refs({ limit: 3 })).toEqual(['crm@2', 'crm@1', 'sms@3']);
      expect(await refs({ limit: 2, app: 'sms' })).toEqual(['sms@3', 'sms@2']);
    });

    it('of 8 publishes racing for one sequence from two hubs, exactly one is stored', async () => {
      const { store, another } = await open();
      const other = await another();
      await store.releases.add(release('sms', '1', 1), T0);
      const r = await race(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? other : store).releases.add(release('sms', `2.${i}`, 2), T0)),
      );
      expect(r.won).toHaveLength(1);
      expect(r.codes).toEqual(Array(7).fill('stale_sequence'));
      expect((await store.releases.list({ limit: 10, app: 'sms' })).map((x) => x.sequence)).toEqual([2, 1]);
    });
  });

  describe('rollouts and vessel targets', () => {
    async function fleet(store: HubStore) {
      const a = await addVessel(store, 'a', ['g1']);
      const b = await addVessel(store, 'b', ['g1', 'g2']);
      const c = await addVessel(store, 'c', ['g2']);
      const d = await addVessel(store, 'd', ['g1']);
      await store.vessels.revoke(d.id, T0);
      const r1 = (await store.releases.add(release('sms', '1', 1), T0)).release;
      const r2 = (await store.releases.add(release('sms', '2', 2), T0)).release;
      return { a, b, c, d, r1, r2 };
    }

    it('targets every unrevoked vessel the target matches, and remembers what each may fetch', async () => {
      const { store } = await open();
      const { a, b, c, d, r1, r2 } = await fleet(store);
      const all = await store.rollouts.start(
        { releaseId: r1.id, target: 'all', createdBy: 'ops:x' },
        T0 + 1,
        audit('rollout.start'),
      );
      expect(all.vessels).toEqual(['a', 'b', 'c']);
      expect(await store.rollouts.targetsOf(a.id)).toEqual([
        { app: 'sms', releaseId: r1.id, rolloutId: all.id, setAt: T0 + 1 },
      ]);
      expect(await store.rollouts.targetsOf(d.id)).toEqual([]);
      const g1 = await store.rollouts.start({ releaseId: r2.id, target: 'group:g1', createdBy: 'ops:x' }, T0 + 2);
      expect(g1.vessels).toEqual(['a', 'b']);
      expect(await store.rollouts.targetsOf(b.id)).toEqual([
        { app: 'sms', releaseId: r2.id, rolloutId: g1.id, setAt: T0 + 2 },
      ]);
      expect(await store.rollouts.targetsOf(c.id)).toEqual([
        { app: 'sms', releaseId: r1.id, rolloutId: all.id, setAt: T0 + 1 },
      ]);
      expect(await store.rollouts.mayFetch(a.id, r1.id)).toBe(true);
      expect(await store.rollouts.mayFetch(a.id, r2.id)).toBe(true);
      expect(await store.rollouts.mayFetch(c.id, r2.id)).toBe(false);
      expect(await store.rollouts.mayFetch(d.id, r1.id)).toBe(false);
      const one = await store.rollouts.start({ releaseId: r2.id, target: 'vessel:c', createdBy: 'ops:y' }, T0 + 3);
      expect(one.vessels).toEqual(['c']);
      expect(await store.rollouts.mayFetch(c.id, r2.id)).toBe(true);
      expect(await actions(store)).toEqual(['rollout.start']);
    });

    it('refuses targets that match nothing, creating no rollout and no audit record', async () => {
      const { store } = await open();
      const { r1 } = await fleet(store);
      const start = (target: string) =>
        store.rollouts.start({ releaseId: r1.id, target, createdBy: 'ops:x' }, T0, audit('rollout.start'));
      await rejectsWith(start('vessel:d'), 'not_found');
      await rejectsWith(start('vessel:zz'), 'not_found');
      await rejectsWith(start('group:none'), 'empty_target');
      await rejectsWith(start('everything'), 'bad_target');
      await rejectsWith(start("group:' OR 1=1--"), 'bad_target');
      expect(await store.rollouts.list({ limit: 10 })).toEqual([]);
      expect(await actions(store)).toEqual([]);
    });

    it('lists rollouts newest first with how many vessels each still targets', async () => {
      const { store } = await open();
      const { r1, r2 } = await fleet(store);
      const first = await store.rollouts.start({ releaseId: r1.id, target: 'all', createdBy: 'ops:x' }, T0 + 1);
      const second = await store.rollouts.start({ releaseId: r2.id, target: 'group:g1', createdBy: 'ops:y' }, T0 + 2);
      // What a rollout started without waves is: one wave, started at once, any failure halts.
      const plan = (at: number, version: string) => ({
        app: 'sms',
        version,
        kind: 'release',
        rules: DEFAULT_RULES,
        canary: [],
        currentWave: 0,
        waveStartedAt: at,
        reason: null,
        counts: null,
        directiveId: null,
        updatedAt: at,
      });
      const list = await store.rollouts.list({ limit: 10 });
      expect(list).toEqual([
        {
          id: second.id,
          releaseId: r2.id,
          target: 'group:g1',
          state: 'active',
          createdAt: T0 + 2,
          createdBy: 'ops:y',
          vessels: 2,
          ...plan(T0 + 2, '2'),
        },
        {
          id: first.id,
          releaseId: r1.id,
          target: 'all',
          state: 'active',
          createdAt: T0 + 1,
          createdBy: 'ops:x',
          vessels: 1,
          ...plan(T0 + 1, '1'),
        },
      ]);
      expect(await store.rollouts.list({ limit: 1 })).toEqual([list[0]]);
      expect(await store.rollouts.get(first.id)).toEqual(list[1]);
      expect(await store.rollouts.get(second.id + 100)).toBeUndefined();
    });
  });

  describe('audit log', () => {
    it('lists entries oldest first, by time and paged by the last id seen', async () => {
      const { store } = await open();
      const ids: number[] = [];
      for (let i = 0; i < 5; i++)
        ids.push(
          await store.audit.append({ actor: `ops:${i}`, action: 'a.b', detail: { i, s: "' OR 1=1--" } }, T0 + i * 10),
        );
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      const all = await store.audit.list({ limit: 100 });
      expect(all.map((a) => a.detail)).toEqual([0, 1, 2, 3, 4].map((i) => ({ i, s: "' OR 1=1--" })));
      expect(all[0]).toEqual({ id: ids[0], at: T0, actor: 'ops:0', action: 'a.b', detail: { i: 0, s: "' OR 1=1--" } });
      expect((await store.audit.list({ limit: 2 })).map((a) => a.id)).toEqual(ids.slice(0, 2));
      expect((await store.audit.list({ limit: 2, after: ids[1] })).map((a) => a.id)).toEqual(ids.slice(2, 4));
      expect((await store.audit.list({ limit: 10, since: T0 + 25 })).map((a) => a.at)).toEqual([T0 + 30, T0 + 40]);
      expect(await store.audit.list({ limit: 10, after: ids[4] })).toEqual([]);
    });
  });

  describe('packs', () => {
    it('records a pack once, for its vessel only, with its digests in order', async () => {
      const { store } = await open();
      const [a, b] = [await addVessel(store, 'a'), await addVessel(store, 'b')];
      const r = (await store.releases.add(release('sms', '1', 1), T0)).release;
      const digests = Array.from({ length: 50 }, (_, i) => sha256(`chunk ${i}`));
      const pack = { id: 'f'.repeat(32), vesselId: a.id, releaseId: r.id, digests, length: 123_456 };
      expect(await store.packs.put(pack, T0)).toEqual({ created: true });
      expect(await store.packs.put(pack, T0 + 5)).toEqual({ created: false });
      expect(await store.packs.get(pack.id, a.id)).toEqual({ ...pack, createdAt: T0 });
      expect(await store.packs.get(pack.id, b.id)).toBeUndefined();
      expect(await store.packs.get('e'.repeat(32), a.id)).toBeUndefined();
      await rejectsWith(store.packs.put({ ...pack, id: 'd'.repeat(32), digests: ['zz'] }, T0), 'bad_digest');
      expect(await store.packs.get('d'.repeat(32), a.id)).toBeUndefined();
    });
  });
}
