import { describe, expect, it } from 'vitest';
import { addVessel, DAY, newToken, publicKey, race, rejectsWith, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const ops = (action: string, detail: unknown = {}) => ({ actor: 'ops:alice:t1', action, detail });

export function vesselTests(open: OpenStore): void {
  describe('vessels', () => {
    it('creates a vessel with sorted, unique groups and finds it by id and by name', async () => {
      const { store } = await open();
      const v = await store.vessels.create({ name: 'ship-a', groups: ['north', 'atlantic', 'north'] }, T0);
      expect(v).toMatchObject({
        name: 'ship-a',
        groups: ['atlantic', 'north'],
        publicKey: null,
        createdAt: T0,
        enrolledAt: null,
        revokedAt: null,
        lastContact: null,
        lastAddress: null,
        currentRelease: null,
        agentVersion: null,
        status: null,
      });
      expect(v.id).toMatch(/^v_[0-9a-f]{16}$/);
      expect(await store.vessels.get(v.id)).toEqual(v);
      expect(await store.vessels.getByName('ship-a')).toEqual(v);
      expect(await store.vessels.get('v_0000000000000000')).toBeUndefined();
      expect(await store.vessels.getByName('ship-b')).toBeUndefined();
    });

    it('creates the vessel, its first enrolment token and the audit record together', async () => {
      const { store } = await open();
      const t = newToken();
      const v = await store.vessels.create(
        { name: 'ship-a', groups: [], token: t.stored, audit: ops('vessel.add', { vessel: 'ship-a' }) },
        T0,
      );
      expect(await store.audit.list({ limit: 10 })).toMatchObject([
        { at: T0, actor: 'ops:alice:t1', action: 'vessel.add', detail: { vessel: 'ship-a' } },
      ]);
      expect(
        await store.enrolment.claim(
          { tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: '10.0.0.1' },
          T0 + 1,
        ),
      ).toBe(v.id);
    });

    it('refuses a second vessel of the same name, storing neither its token nor its audit record', async () => {
      const { store, another } = await open();
      await addVessel(store, 'ship-a');
      const t = newToken();
      await rejectsWith(
        store.vessels.create({ name: 'ship-a', groups: ['x'], token: t.stored, audit: ops('vessel.add') }, T0),
        'exists',
      );
      await rejectsWith(
        store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: 'a' }, T0),
        'bad_token',
      );
      expect(await store.audit.list({ limit: 10 })).toEqual([]);
      // Racing creations of one name from two hubs: exactly one exists afterwards.
      const other = await another();
      const r = await race(
        [0, 1, 2, 3].map((i) => (i % 2 ? other : store).vessels.create({ name: 'ship-b', groups: [] }, T0)),
      );
      expect(r.won).toHaveLength(1);
      expect(r.codes).toEqual(['exists', 'exists', 'exists']);
      expect(await store.vessels.list({ limit: 10 })).toHaveLength(2);
    });

    it('lists vessels in byte order of their names, paged by offset or by the last name seen', async () => {
      const { store } = await open();
      for (const n of ['delta', 'alpha', 'charlie-2', 'bravo', 'charlie', '9-zulu']) await addVessel(store, n);
      const names = async (q: Parameters<typeof store.vessels.list>[0]) =>
        (await store.vessels.list(q)).map((v) => v.name);
      const all = ['9-zulu', 'alpha', 'bravo', 'charlie', 'charlie-2', 'delta'];
      expect(await names({ limit: 100 })).toEqual(all);
      expect(await names({ limit: 2 })).toEqual(all.slice(0, 2));
      expect(await names({ limit: 2, offset: 2 })).toEqual(all.slice(2, 4));
      expect(await names({ limit: 2, offset: 6 })).toEqual([]);
      expect(await names({ limit: 3, after: 'bravo' })).toEqual(['charlie', 'charlie-2', 'delta']);
      expect(await names({ limit: 3, after: 'delta' })).toEqual([]);
      // Paging by the last name seen walks the whole fleet exactly once.
      const walked: string[] = [];
      for (let page = await names({ limit: 4 }); page.length; page = await names({ limit: 4, after: page.at(-1) }))
        walked.push(...page);
      expect(walked).toEqual(all);
    });

    it('filters by group before paging, so a page is full of the group', async () => {
      const { store } = await open();
      for (let i = 0; i < 6; i++) await addVessel(store, `ship-${i}`, i % 2 ? ['odd'] : ['even', 'all']);
      const page = async (q: Parameters<typeof store.vessels.list>[0]) =>
        (await store.vessels.list(q)).map((v) => v.name);
      expect(await page({ limit: 2, group: 'odd' })).toEqual(['ship-1', 'ship-3']);
      expect(await page({ limit: 2, group: 'odd', offset: 2 })).toEqual(['ship-5']);
      expect(await page({ limit: 5, group: 'even', after: 'ship-0' })).toEqual(['ship-2', 'ship-4']);
      expect(await page({ limit: 5, group: 'od' })).toEqual([]);
    });

    it('records the last contact with its address, and the latest status report', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'ship-a');
      await store.vessels.touch(v.id, '198.51.100.7', T0 + 5);
      const status = { current: 'sms@1.2', services: { portal: 'healthy' }, n: [1, 2] };
      await store.vessels.report(v.id, { currentRelease: 'sms@1.2', agentVersion: '0.3.0', status });
      expect(await store.vessels.get(v.id)).toMatchObject({
        lastContact: T0 + 5,
        lastAddress: '198.51.100.7',
        currentRelease: 'sms@1.2',
        agentVersion: '0.3.0',
        status,
      });
      await store.vessels.report(v.id, { currentRelease: null, agentVersion: '0.3.1', status: { current: null } });
      expect(await store.vessels.get(v.id)).toMatchObject({ currentRelease: null, status: { current: null } });
    });

    it('revokes a vessel and cancels its unused tokens in one step', async () => {
      const { store } = await open();
      const first = newToken();
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: first.stored }, T0);
      const second = newToken(T0 + 2 * DAY, 'offline');
      await store.enrolment.issue(v.id, second.stored, T0 + 1);
      expect(await store.vessels.revoke(v.id, T0 + 10, ops('vessel.revoke'))).toEqual({
        revoked: true,
        tokensCancelled: 2,
      });
      expect((await store.vessels.get(v.id))!.revokedAt).toBe(T0 + 10);
      for (const t of [first, second])
        await rejectsWith(
          store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: 'a' }, T0 + 11),
          'token_expired',
        );
      expect(await store.vessels.revoke(v.id, T0 + 20, ops('vessel.revoke'))).toEqual({
        revoked: false,
        tokensCancelled: 0,
      });
      expect((await store.vessels.get(v.id))!.revokedAt).toBe(T0 + 10);
      expect((await store.audit.list({ limit: 10 })).map((a) => a.at)).toEqual([T0 + 10, T0 + 20]);
    });

    it('counts unrevoked vessels and those heard from since a time', async () => {
      const { store } = await open();
      expect(await store.vessels.counts(T0)).toEqual({ total: 0, active: 0 });
      const [a, b, c] = [await addVessel(store, 'a'), await addVessel(store, 'b'), await addVessel(store, 'c')];
      await addVessel(store, 'd');
      await store.vessels.touch(a.id, 'x', T0 + 100);
      await store.vessels.touch(b.id, 'x', T0 + 50);
      await store.vessels.touch(c.id, 'x', T0 + 200);
      await store.vessels.revoke(c.id, T0 + 300);
      expect(await store.vessels.counts(T0 + 50)).toEqual({ total: 3, active: 2 });
      expect(await store.vessels.counts(T0 + 51)).toEqual({ total: 3, active: 1 });
    });

    it('shows one handle what another wrote', async () => {
      const { store, another } = await open();
      const other = await another();
      const v = await addVessel(store, 'ship-a', ['g']);
      expect(await other.vessels.getByName('ship-a')).toEqual(v);
    });
  });

  describe('enrolment', () => {
    it('uses a token once: the claim records the key, the time and the address', async () => {
      const { store } = await open();
      const t = newToken();
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: t.stored }, T0);
      const key = publicKey();
      expect(
        await store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: key, address: '10.1.1.1' }, T0 + 7),
      ).toBe(v.id);
      expect(await store.vessels.get(v.id)).toMatchObject({ publicKey: key, enrolledAt: T0 + 7 });
      await rejectsWith(
        store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: '10.1.1.2' }, T0 + 8),
        'token_used',
      );
      expect((await store.vessels.get(v.id))!.publicKey).toBe(key);
    });

    it('refuses unknown and expired tokens and leaves the vessel unenrolled', async () => {
      const { store } = await open();
      const t = newToken(T0 + 1000);
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: t.stored }, T0);
      await rejectsWith(
        store.enrolment.claim({ tokenHash: newToken().stored.tokenHash, publicKey: publicKey(), address: 'a' }, T0),
        'bad_token',
      );
      await rejectsWith(
        store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: 'a' }, T0 + 1000),
        'token_expired',
      );
      expect(await store.vessels.get(v.id)).toMatchObject({ publicKey: null, enrolledAt: null });
    });

    it('of 8 claims racing on one token from two hubs, exactly one wins and its key is kept', async () => {
      const { store, another } = await open();
      const other = await another();
      const t = newToken();
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: t.stored }, T0);
      const keys = Array.from({ length: 8 }, publicKey);
      const r = await race(
        keys.map((k, i) =>
          (i % 2 ? other : store).enrolment
            .claim({ tokenHash: t.stored.tokenHash, publicKey: k, address: `10.0.0.${i}` }, T0 + 1)
            .then(() => k),
        ),
      );
      expect(r.won).toHaveLength(1);
      expect(r.codes).toEqual(Array(7).fill('token_used'));
      expect((await store.vessels.get(v.id))!.publicKey).toBe(r.won[0]);
    });

    it('issues further tokens only for existing, unrevoked vessels, with their audit record', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'ship-a');
      const t = newToken();
      await store.enrolment.issue(v.id, t.stored, T0 + 1, ops('vessel.token'));
      expect(
        await store.enrolment.claim({ tokenHash: t.stored.tokenHash, publicKey: publicKey(), address: 'a' }, T0 + 2),
      ).toBe(v.id);
      await rejectsWith(store.enrolment.issue('v_00000000000000ff', newToken().stored, T0, ops('x')), 'not_found');
      await store.vessels.revoke(v.id, T0 + 3);
      await rejectsWith(store.enrolment.issue(v.id, newToken().stored, T0 + 4, ops('x')), 'revoked');
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual(['vessel.token']);
    });
  });
}
