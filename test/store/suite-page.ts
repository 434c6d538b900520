import { describe, expect, it } from 'vitest';
import { addVessel, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';
import type { FleetQuery } from '../../hub/store/page-records.js';

const MIN = 60_000;
const clock = { staleBefore: T0 - 5 * MIN, offlineBefore: T0 - 15 * MIN };
const q = (over: Partial<FleetQuery> = {}): FleetQuery => ({
  sort: 'name',
  desc: false,
  limit: 50,
  offset: 0,
  ...over,
});
const report = (apps: unknown[] = [], services: unknown[] = []) => ({
  agentVersion: '1',
  current: '1.0.0',
  previous: null,
  pending: null,
  held: false,
  rootVersion: 1,
  backlog: 0,
  services,
  bootId: 'b',
  reportedAt: new Date(T0).toISOString(),
  apps,
});

export function pageTests(open: OpenStore): void {
  describe('status page records', () => {
    it('pages, searches, filters by group and state, sorts, and counts per state in one query per page', async () => {
      const { store } = await open();
      const names: string[] = [];
      for (let i = 0; i < 30; i++) {
        const name = `ship-${String(i).padStart(2, '0')}`;
        names.push(name);
        const v = await addVessel(store, name, i % 2 ? ['north'] : ['south']);
        // 0-9 online, 10-19 stale, 20-24 offline, 25-29 never heard from.
        if (i < 25)
          await store.vessels.touch(v.id, '127.0.0.1', i < 10 ? T0 - MIN : i < 20 ? T0 - 10 * MIN : T0 - 60 * MIN);
      }
      const v3 = (await store.vessels.getByName('ship-03'))!;
      await store.vessels.report(v3.id, {
        currentRelease: '1.0.0',
        agentVersion: '1',
        status: report([], [{ name: 'web', state: 'missing' }]),
        receivedAt: T0 - MIN,
        flags: ',failing,',
      });
      const v4 = (await store.vessels.getByName('ship-04'))!;
      await store.vessels.report(v4.id, {
        currentRelease: '1.0.0',
        agentVersion: '1',
        status: report([{ app: 'sms', live: '1.0.0', desired: '1.0.1', held: true, pending: null }]),
        receivedAt: T0 - MIN,
        flags: ',held,',
      });
      // A rollout to ship-05, which never reported what it runs: pending ashore, updating.
      const rel = await store.releases.add(
        { app: 'sms', version: '1.0.1', sequence: 2, envelope: Buffer.from('x'), publishedBy: 't' },
        T0,
      );
      const ro = await store.rollouts.start(
        { releaseId: rel.release.id, target: 'vessel:ship-05', createdBy: 't' },
        T0,
      );

      const first = await store.page.fleet(q({ limit: 10 }), clock);
      expect(first.total).toBe(30);
      expect(first.rows.map((r) => r.name)).toEqual(names.slice(0, 10));
      const third = await store.page.fleet(q({ limit: 10, offset: 20 }), clock);
      expect(third.rows.map((r) => r.name)).toEqual(names.slice(20, 30));
      expect((await store.page.fleet(q({ limit: 10, offset: 100 }), clock)).total).toBe(30);

      expect((await store.page.fleet(q({ search: 'ip-1' }), clock)).rows).toHaveLength(10);
      expect((await store.page.fleet(q({ search: '%' }), clock)).rows).toHaveLength(0);
      expect((await store.page.fleet(q({ group: 'north' }), clock)).total).toBe(15);
      expect((await store.page.fleet(q({ state: 'stale' }), clock)).total).toBe(10);
      expect((await store.page.fleet(q({ state: 'offline' }), clock)).total).toBe(5);
      expect((await store.page.fleet(q({ state: 'never' }), clock)).total).toBe(5);
      expect((await store.page.fleet(q({ state: 'failing' }), clock)).rows.map((r) => r.name)).toEqual(['ship-03']);
      expect((await store.page.fleet(q({ state: 'held' }), clock)).rows.map((r) => r.name)).toEqual(['ship-04']);
      expect((await store.page.fleet(q({ state: 'updating' }), clock)).rows.map((r) => r.name)).toEqual(['ship-05']);
      expect((await store.page.fleet(q({ rollout: ro.id }), clock)).rows.map((r) => r.name)).toEqual(['ship-05']);
      expect((await store.page.fleet(q({ release: 'sms@1.0.0' }), clock)).rows.map((r) => r.name)).toEqual(['ship-04']);
      const byContact = await store.page.fleet(q({ sort: 'contact', desc: true, limit: 3 }), clock);
      expect(byContact.rows.map((r) => r.name)).toEqual(['ship-00', 'ship-01', 'ship-02']);
      const desc = await store.page.fleet(q({ desc: true, limit: 2 }), clock);
      expect(desc.rows.map((r) => r.name)).toEqual(['ship-29', 'ship-28']);

      const five = (await store.page.fleet(q({ search: 'ship-05' }), clock)).rows[0]!;
      expect(five.desired).toEqual([{ app: 'sms', version: '1.0.1' }]);
      expect(five.pendingAshore).toBe(true);
      expect(five.rollout).toMatchObject({ id: ro.id, wave: 0, outcome: 'pending', state: 'active' });
      const three = (await store.page.fleet(q({ search: 'ship-03' }), clock)).rows[0]!;
      expect(three).toMatchObject({ flags: ['failing'], statusReceivedAt: T0 - MIN, pendingAshore: false });

      expect(await store.page.counts(clock)).toEqual({
        total: 30,
        online: 10,
        stale: 10,
        offline: 5,
        never: 5,
        revoked: 0,
        failing: 1,
        updating: 1,
        held: 1,
        window: 0,
      });
      expect(await store.page.vesselRollouts((await store.vessels.getByName('ship-05'))!.id, 10)).toMatchObject([
        { rolloutId: ro.id, app: 'sms', version: '1.0.1', outcome: 'pending', rolloutState: 'active' },
      ]);
    });

    it('keeps browser sessions until they expire, and forgets ended ones', async () => {
      const { store, another } = await open();
      await store.page.createSession('h1', { tokenId: 't1', csrf: 'c1', createdAt: T0, expiresAt: T0 + MIN }, T0);
      const other = await another();
      expect(await other.page.session('h1', T0 + 1)).toEqual({
        tokenId: 't1',
        csrf: 'c1',
        createdAt: T0,
        expiresAt: T0 + MIN,
      });
      expect(await store.page.session('h1', T0 + MIN)).toBeUndefined();
      expect(await store.page.session('nope', T0)).toBeUndefined();
      await store.page.createSession('h2', { tokenId: 't1', csrf: 'c2', createdAt: T0, expiresAt: T0 + MIN }, T0);
      await store.page.endSession('h2');
      expect(await store.page.session('h2', T0)).toBeUndefined();
    });
  });
}
