import { describe, expect, it } from 'vitest';
import { addVessel, DAY, newToken, publicKey, race, rejectsWith, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const admin = (action: string, detail: unknown = {}) => ({ actor: 'ops:root:t0', action, detail });
const rekeyToken = (expiresAt = T0 + DAY) => {
  const t = newToken(expiresAt);
  return { ...t, stored: { ...t.stored, rekey: true } };
};

/** Replay keys of signed requests, report order, re-key tokens, ops token expiry (ATTACKS.md 38, 44, 45). */
export function hubsecTests(open: OpenStore): void {
  describe('signed request replay keys', () => {
    it('answers true for the first use of a key and false for every later one, per vessel', async () => {
      const { store } = await open();
      const [a, b] = [await addVessel(store, 'a'), await addVessel(store, 'b')];
      expect(await store.requests.firstUse(a.id, 'k1', T0 + 300_000, T0)).toBe(true);
      expect(await store.requests.firstUse(a.id, 'k1', T0 + 300_000, T0 + 1)).toBe(false);
      expect(await store.requests.firstUse(a.id, 'k2', T0 + 300_000, T0 + 2)).toBe(true);
      // Another vessel's key space is its own.
      expect(await store.requests.firstUse(b.id, 'k1', T0 + 300_000, T0 + 3)).toBe(true);
    });

    it('lets exactly one of many uses racing from two hubs win', async () => {
      const { store, another } = await open();
      const other = await another();
      const v = await addVessel(store, 'a');
      const tries = Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? other : store).requests.firstUse(v.id, 'same', T0 + 300_000, T0 + i),
      );
      expect((await Promise.all(tries)).filter(Boolean)).toHaveLength(1);
    });

    it('forgets keys whose window has passed (the request itself is refused by its time then)', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'a');
      expect(await store.requests.firstUse(v.id, 'k', T0 + 100, T0)).toBe(true);
      expect(await store.requests.firstUse(v.id, 'k', T0 + 100, T0 + 99)).toBe(false);
      expect(await store.requests.firstUse(v.id, 'k', T0 + 500, T0 + 100)).toBe(true);
    });
  });

  describe('status report order', () => {
    it('keeps the newer report when an older one arrives later; untimed reports still apply', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'a');
      const r = (current: string) => ({ currentRelease: current, agentVersion: '1', status: { current } });
      expect(await store.vessels.report(v.id, r('sms@2'), T0 + 20)).toBe(true);
      expect(await store.vessels.report(v.id, r('sms@1'), T0 + 10)).toBe(false);
      expect(await store.vessels.get(v.id)).toMatchObject({ currentRelease: 'sms@2', status: { current: 'sms@2' } });
      expect(await store.vessels.report(v.id, r('sms@3'), T0 + 20)).toBe(true);
      expect(await store.vessels.report(v.id, r('sms@4'), T0 + 30)).toBe(true);
      expect(await store.vessels.report(v.id, r('sms@5'))).toBe(true);
      expect((await store.vessels.get(v.id))!.currentRelease).toBe('sms@5');
      expect(await store.vessels.report(v.id, r('sms@old'), T0 + 25)).toBe(false);
    });
  });

  describe('re-keying an enrolled vessel', () => {
    async function enrolled(store: Awaited<ReturnType<OpenStore>>['store']) {
      const first = newToken();
      const early = newToken(T0 + 5 * DAY, 'offline');
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: first.stored }, T0);
      // Issued before enrolment, still unused after it: the attack of ATTACKS.md 38.
      await store.enrolment.issue(v.id, early.stored, T0 + 1);
      const key = publicKey();
      await store.enrolment.claim({ tokenHash: first.stored.tokenHash, publicKey: key, address: 'a' }, T0 + 2);
      return { v, key, early };
    }

    it('refuses a token issued before enrolment once the vessel has a key; the key stays', async () => {
      const { store } = await open();
      const { v, key, early } = await enrolled(store);
      await rejectsWith(
        store.enrolment.claim({ tokenHash: early.stored.tokenHash, publicKey: publicKey(), address: 'x' }, T0 + 3),
        'token_expired',
      );
      expect((await store.vessels.get(v.id))!.publicKey).toBe(key);
    });

    it('refuses an ordinary token for an enrolled vessel, and a claim of one that slipped in before', async () => {
      const { store } = await open();
      const { v, key } = await enrolled(store);
      await rejectsWith(store.enrolment.issue(v.id, newToken().stored, T0 + 3, admin('vessel.token')), 'enrolled');
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual([]);
      expect((await store.vessels.get(v.id))!.publicKey).toBe(key);
    });

    it('replaces the key only with a re-key token, which cancels every other outstanding token', async () => {
      const { store } = await open();
      const { v, key } = await enrolled(store);
      const r1 = rekeyToken();
      const r2 = rekeyToken();
      expect(await store.enrolment.issue(v.id, r1.stored, T0 + 3, admin('vessel.rekey'))).toEqual({
        tokensCancelled: 0,
      });
      expect(await store.enrolment.issue(v.id, r2.stored, T0 + 4, admin('vessel.rekey'))).toEqual({
        tokensCancelled: 1,
      });
      // The old key works until the re-key token is used.
      expect((await store.vessels.get(v.id))!.publicKey).toBe(key);
      await rejectsWith(
        store.enrolment.claim({ tokenHash: r1.stored.tokenHash, publicKey: publicKey(), address: 'x' }, T0 + 5),
        'token_expired',
      );
      const fresh = publicKey();
      expect(
        await store.enrolment.claim({ tokenHash: r2.stored.tokenHash, publicKey: fresh, address: 'x' }, T0 + 6),
      ).toBe(v.id);
      expect(await store.vessels.get(v.id)).toMatchObject({ publicKey: fresh, enrolledAt: T0 + 6 });
      // Issuing is audited (the admin), and so is the key changing hands (which key, from what address).
      const log = await store.audit.list({ limit: 10 });
      expect(log.map((a) => a.action).sort()).toEqual(['vessel.rekey', 'vessel.rekey', 'vessel.rekeyed']);
      expect(log.find((a) => a.action === 'vessel.rekeyed')).toMatchObject({
        actor: 'enrolment:x',
        detail: { vesselId: v.id, address: 'x', previousKey: key, publicKey: fresh },
      });
    });

    it('lets one of many claims racing on a re-key token win', async () => {
      const { store, another } = await open();
      const other = await another();
      const { v } = await enrolled(store);
      const t = rekeyToken();
      await store.enrolment.issue(v.id, t.stored, T0 + 3);
      const keys = Array.from({ length: 6 }, publicKey);
      const r = await race(
        keys.map((k, i) =>
          (i % 2 ? other : store).enrolment
            .claim({ tokenHash: t.stored.tokenHash, publicKey: k, address: 'x' }, T0 + 4)
            .then(() => k),
        ),
      );
      expect(r.won).toHaveLength(1);
      expect((await store.vessels.get(v.id))!.publicKey).toBe(r.won[0]);
    });
  });

  describe('hub TLS announcements', () => {
    it('keeps the newest sequence in force, refuses an older or a changed one, repeats harmlessly', async () => {
      const { store } = await open();
      expect(await store.hubTls.latest()).toBeUndefined();
      const a5 = Buffer.from('announcement five');
      const pub = (sequence: number, envelope: Buffer) =>
        store.hubTls.publish({ sequence, envelope, publishedBy: 'ops:op' }, T0 + sequence, admin('hub-tls.publish'));
      expect(await pub(5, a5)).toEqual({ created: true });
      expect(await pub(5, Buffer.from(a5))).toEqual({ created: false });
      await rejectsWith(pub(5, Buffer.from('another five')), 'exists');
      await rejectsWith(pub(4, Buffer.from('four')), 'stale_sequence');
      expect(await pub(9, Buffer.from('nine'))).toEqual({ created: true });
      expect(await store.hubTls.latest()).toEqual({
        sequence: 9,
        envelope: Buffer.from('nine'),
        publishedAt: T0 + 9,
        publishedBy: 'ops:op',
      });
      // Audited when stored or repeated, not when refused.
      const audited = (await store.audit.list({ limit: 10 })).filter((r) => r.action === 'hub-tls.publish');
      expect(audited).toHaveLength(3);
    });

    it('stores one of two announcements racing from two hubs with the same sequence', async () => {
      const { store, another } = await open();
      const other = await another();
      const results = await Promise.allSettled(
        [store, other].map((h, i) =>
          h.hubTls.publish({ sequence: 7, envelope: Buffer.from(`hub ${i}`), publishedBy: 'x' }, T0),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'rejected').map((r) => (r.reason as { code: string }).code)).toEqual([
        'exists',
      ]);
    });
  });

  describe('ops token expiry', () => {
    it('stores and lists the expiry; tokens made without one have none', async () => {
      const { store } = await open();
      await store.opsTokens.create(
        { id: 'a'.repeat(16), tokenHash: 'h1', role: 'viewer', name: 'ci', expiresAt: T0 + DAY },
        T0,
      );
      await store.opsTokens.create({ id: 'b'.repeat(16), tokenHash: 'h2', role: 'admin', name: 'old' }, T0 + 1);
      expect((await store.opsTokens.list()).map((t) => [t.name, t.expiresAt])).toEqual([
        ['ci', T0 + DAY],
        ['old', null],
      ]);
      expect((await store.opsTokens.get('a'.repeat(16)))!.expiresAt).toBe(T0 + DAY);
    });
  });
}
