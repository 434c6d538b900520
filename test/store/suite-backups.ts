import { describe, expect, it } from 'vitest';
import type { BackupAshore, HubStore } from '../../hub/store/hub-store.js';
import { addVessel, DAY, makeChunk, race, rejectsWith, sha256, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const policy = (name: string, sequence: number, targets: string[]) => ({
  name,
  sequence,
  targets,
  envelope: Buffer.from(`signed ${name} #${sequence} ${targets.join(',')}`),
  publishedBy: 'ops',
});

async function putChunks(store: HubStore, n: number) {
  const made = Array.from({ length: n }, () => makeChunk());
  for (const c of made) await store.chunks.put(c.digest, c.compressed, c.raw.byteLength);
  return made.map((c) => c.digest);
}

const backup = (
  vesselId: string,
  id: string,
  chunks: string[],
  startedAt: number,
): Omit<BackupAshore, 'receivedAt'> => ({
  vesselId,
  id,
  policy: 'db',
  policySequence: 1,
  method: 'postgres',
  startedAt,
  finishedAt: startedAt + 1000,
  bytes: 1234,
  sha256: sha256(id),
  rawBytes: 5678,
  rawSha256: sha256(`${id} raw`),
  seal: null,
  chunks,
});

export function backupTests(open: OpenStore): void {
  describe('backup policies', () => {
    it('keeps the newest sequence per name; a retry is harmless, an older or different one refused', async () => {
      const { store } = await open();
      expect(await store.policies.publish(policy('db', 5, ['all']), T0)).toEqual({ created: true });
      expect(await store.policies.publish(policy('db', 5, ['all']), T0 + 1)).toEqual({ created: false });
      await rejectsWith(
        store.policies.publish({ ...policy('db', 5, ['all']), envelope: Buffer.from('x') }, T0),
        'exists',
      );
      await rejectsWith(store.policies.publish(policy('db', 4, ['all']), T0), 'stale_sequence');
      await store.policies.publish(policy('db', 7, ['group:north']), T0 + 2);
      await store.policies.publish(policy('app', 1, ['vessel:ship-a']), T0 + 3, {
        actor: 'ops',
        action: 'policy.publish',
        detail: { name: 'app' },
      });
      expect(await store.policies.list()).toEqual([
        { name: 'app', sequence: 1, targets: ['vessel:ship-a'], publishedAt: T0 + 3, publishedBy: 'ops' },
        { name: 'db', sequence: 7, targets: ['group:north'], publishedAt: T0 + 2, publishedBy: 'ops' },
      ]);
      expect((await store.audit.list({ limit: 10 })).map((a) => a.action)).toEqual(['policy.publish']);
    });

    it('two hubs publishing the same sequence of a policy: one stores it', async () => {
      const { store, another } = await open();
      const other = await another();
      const r = await race([
        store.policies.publish(policy('db', 3, ['all']), T0),
        other.policies.publish({ ...policy('db', 3, ['all']), envelope: Buffer.from('other bytes') }, T0),
      ]);
      expect(r.won).toEqual([{ created: true }]);
      expect(r.codes).toEqual(['exists']);
    });

    it('gives a vessel the newest envelope of each policy that names it, or that named it before', async () => {
      const { store } = await open();
      await store.policies.publish(policy('all', 1, ['all']), T0);
      await store.policies.publish(policy('north', 1, ['group:north']), T0);
      await store.policies.publish(policy('mine', 1, ['vessel:ship-a']), T0);
      await store.policies.publish(policy('moved', 1, ['vessel:ship-a']), T0);
      await store.policies.publish(policy('moved', 2, ['vessel:ship-b']), T0);
      const a = await store.policies.forVessel({ name: 'ship-a', groups: ['north'] });
      expect(a.map((p) => [p.name, p.envelope.toString()])).toEqual([
        ['all', 'signed all #1 all'],
        ['mine', 'signed mine #1 vessel:ship-a'],
        ['moved', 'signed moved #2 vessel:ship-b'],
        ['north', 'signed north #1 group:north'],
      ]);
      const c = await store.policies.forVessel({ name: 'ship-c', groups: [] });
      expect(c.map((p) => p.name)).toEqual(['all']);
    });
  });

  describe('backups ashore', () => {
    it('records a backup only when every chunk is stored, once; lists newest first', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'ship-a');
      const digests = await putChunks(store, 3);
      const absent = sha256('absent chunk');
      await rejectsWith(
        store.backups.put(backup(v.id, 'db-20260101T030000Z', [...digests, absent], T0), T0),
        'chunk_missing',
      );
      expect(await store.backups.get(v.id, 'db-20260101T030000Z')).toBeUndefined();
      const b1 = backup(v.id, 'db-20260101T030000Z', [...digests, digests[0]!], T0);
      expect(await store.backups.put(b1, T0 + 5)).toEqual({ created: true });
      expect(await store.backups.put(b1, T0 + 6)).toEqual({ created: false });
      await rejectsWith(store.backups.put({ ...b1, chunks: digests }, T0), 'exists');
      const b2 = {
        ...backup(v.id, 'db-20260102T030000Z', digests.slice(1), T0 + DAY),
        seal: { keyId: 'ab'.repeat(8), header: 'aGk=' },
        rawSha256: null,
      };
      await store.backups.put(b2, T0 + DAY);
      expect(await store.backups.get(v.id, b1.id)).toEqual({ ...b1, receivedAt: T0 + 5 });
      const listed = await store.backups.list(v.id, { limit: 10 });
      expect(listed.map((b) => [b.id, b.chunkCount, b.seal?.keyId ?? null])).toEqual([
        [b2.id, 2, 'ab'.repeat(8)],
        [b1.id, 4, null],
      ]);
      expect(await store.backups.list(v.id, { limit: 1, policy: 'other' })).toEqual([]);
      const other = await addVessel(store, 'ship-b');
      expect(await store.backups.get(other.id, b1.id)).toBeUndefined();
      expect(await store.backups.list(other.id, { limit: 10 })).toEqual([]);
    });

    it(
      'retention keeps the newest, removes the rest by count and age, and only chunks ' + 'nothing else names',
      async () => {
        const { store } = await open();
        const v = await addVessel(store, 'ship-a');
        const w = await addVessel(store, 'ship-b');
        const shared = await putChunks(store, 2);
        const own = await putChunks(store, 4);
        await store.backups.put(backup(v.id, 'db-20260101T030000Z', [shared[0]!, own[0]!], T0), T0);
        await store.backups.put(backup(v.id, 'db-20260102T030000Z', [shared[0]!, own[1]!], T0 + DAY), T0);
        await store.backups.put(backup(v.id, 'db-20260103T030000Z', [shared[1]!, own[2]!], T0 + 2 * DAY), T0);
        await store.backups.put(backup(w.id, 'db-20260101T030000Z', [shared[1]!, own[3]!], T0), T0);
        const r = await store.backups.prune(v.id, 'db', { count: 2, maxAgeMs: 30 * DAY }, T0 + 2 * DAY);
        expect(r).toEqual({ removed: ['db-20260101T030000Z'], chunksRemoved: 1 });
        expect(await store.chunks.missing([...shared, ...own])).toEqual([own[0]]);
        // Past the age every one goes but the newest; ship-b's backup keeps the chunk they share.
        const aged = await store.backups.prune(v.id, 'db', { count: 10, maxAgeMs: DAY }, T0 + 40 * DAY);
        expect(aged).toEqual({ removed: ['db-20260102T030000Z'], chunksRemoved: 2 });
        expect(await store.chunks.missing([...shared, ...own])).toEqual([shared[0], own[0], own[1]]);
        expect((await store.backups.list(v.id, { limit: 10 })).map((b) => b.id)).toEqual(['db-20260103T030000Z']);
        expect((await store.backups.list(w.id, { limit: 10 })).map((b) => b.id)).toEqual(['db-20260101T030000Z']);
      },
    );

    it(
      'keeps per vessel and policy the last good backup reported, and an alarm until a ' + 'good one clears it',
      async () => {
        const { store } = await open();
        const v = await addVessel(store, 'ship-a');
        await addVessel(store, 'ship-b');
        await store.backups.noteResult(v.id, { policy: 'db', result: 'ok', id: 'db-1', at: T0 });
        await store.backups.noteResult(v.id, {
          policy: 'db',
          result: 'failed',
          id: null,
          at: T0 + DAY,
          reason: 'disk',
        });
        // A late-arriving older success changes neither.
        await store.backups.noteResult(v.id, { policy: 'db', result: 'ok', id: 'db-0', at: T0 - DAY });
        let s = await store.backups.states();
        expect(s).toEqual([
          {
            vesselId: v.id,
            vessel: 'ship-a',
            policy: 'db',
            lastGood: { id: 'db-1', at: T0 },
            lastAshore: null,
            alarm: { kind: 'failed', reason: 'disk', since: T0 + DAY },
          },
        ]);
        await store.backups.noteResult(v.id, {
          policy: 'db',
          result: 'missed',
          id: null,
          at: T0 + 2 * DAY,
          reason: '2 slots',
        });
        await store.backups.noteResult(v.id, {
          policy: 'db',
          result: 'ok',
          id: 'db-3',
          at: T0 + 2 * DAY + 5,
          catchUp: true,
        });
        s = await store.backups.states();
        expect(s[0]).toMatchObject({ lastGood: { id: 'db-3' }, alarm: { kind: 'missed', since: T0 + 2 * DAY } });
        await store.backups.noteResult(v.id, { policy: 'db', result: 'ok', id: 'db-4', at: T0 + 3 * DAY });
        const digests = await putChunks(store, 1);
        await store.backups.put(backup(v.id, 'db-20260103T030000Z', digests, T0 + 3 * DAY), T0 + 3 * DAY);
        s = await store.backups.states();
        expect(s[0]).toMatchObject({
          lastGood: { id: 'db-4', at: T0 + 3 * DAY },
          lastAshore: { id: 'db-20260103T030000Z', at: T0 + 3 * DAY },
          alarm: null,
        });
      },
    );
  });
}
