import { describe, expect, it } from 'vitest';
import type { HubStore, TelemetryRecord } from '../../hub/store/hub-store.js';
import { addVessel, race, T0 } from './fixtures.js';
import type { OpenStore } from './fixtures.js';

const EPOCH = '0123456789abcdef';
const meta = (backlog = 0, epoch = EPOCH) => ({ epoch, backlog, drops: { logs: { records: 3, bytes: 300 } } });

const log = (seq: number, ts: number, line: string, service = 'portal', level = 'info'): TelemetryRecord => ({
  kind: 'log',
  seq,
  ts,
  service,
  level,
  line,
  bootId: 'boot-1',
});
const event = (seq: number, ts: number, type: string, data: string): TelemetryRecord => ({
  kind: 'event',
  seq,
  ts,
  type,
  data,
});
const metric = (seq: number, ts: number, name: string, value: number, labels = {}): TelemetryRecord => ({
  kind: 'metric',
  seq,
  ts,
  name,
  labels,
  value,
});

/** A mixed batch of n records: logs, events and metrics interleaved, seq 1..n. */
function batch(n: number, seq0 = 1): TelemetryRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = seq0 + i;
    const ts = T0 + seq * 1000;
    if (seq % 3 === 0) return event(seq, ts, 'health.changed', JSON.stringify({ service: 'portal', seq }));
    if (seq % 3 === 1) return log(seq, ts, `line ${seq}`);
    return metric(seq, ts, 'cpu_seconds', seq / 2, { service: 'portal' });
  });
}

async function counted(store: HubStore, vesselId: string) {
  const c = (await store.telemetry.counters(vesselId))!;
  return { records: c.recordsReceived, bytes: c.bytesReceived };
}

export function telemetryTests(open: OpenStore): void {
  describe('telemetry', () => {
    it('stores a batch once however often it is retried, counting bytes over the link each time', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'ship-a');
      const records = batch(30);
      expect(await store.telemetry.ingest(v.id, meta(12), records, 4000, T0 + 1)).toEqual({
        stored: 30,
        duplicates: 0,
      });
      expect(await store.telemetry.ingest(v.id, meta(11), records, 4000, T0 + 2)).toEqual({
        stored: 0,
        duplicates: 30,
      });
      expect(await store.telemetry.counters(v.id)).toEqual({
        backlog: 11,
        drops: { logs: { records: 3, bytes: 300 } },
        recordsReceived: 30,
        bytesReceived: 8000,
        lastBatchAt: T0 + 2,
      });
      // A batch overlapping the stored one stores only the new records; a seq repeated inside it, once.
      const overlap = [...batch(10, 26), ...batch(1, 34)];
      expect(await store.telemetry.ingest(v.id, meta(), overlap, 500, T0 + 3)).toEqual({ stored: 5, duplicates: 6 });
      expect(await counted(store, v.id)).toEqual({ records: 35, bytes: 8500 });
      const logSeqs = Array.from({ length: 35 }, (_, i) => i + 1).filter((seq) => seq % 3 === 1);
      expect((await store.telemetry.logs(v.id, { limit: 100 })).map((l) => l.seq)).toEqual(logSeqs);
    });

    it('keys records by vessel, epoch and seq: the same seq in another epoch or vessel is another record', async () => {
      const { store } = await open();
      const [a, b] = [await addVessel(store, 'a'), await addVessel(store, 'b')];
      expect(await store.telemetry.ingest(a.id, meta(), [log(1, T0, 'x')], 10, T0)).toMatchObject({ stored: 1 });
      expect(await store.telemetry.ingest(a.id, meta(0, 'fedcba9876543210'), [log(1, T0, 'y')], 10, T0)).toMatchObject({
        stored: 1,
      });
      expect(await store.telemetry.ingest(b.id, meta(), [log(1, T0, 'z')], 10, T0)).toMatchObject({ stored: 1 });
      expect((await store.telemetry.logs(a.id, { limit: 10 })).map((l) => [l.epoch, l.line]).sort()).toEqual([
        [EPOCH, 'x'],
        ['fedcba9876543210', 'y'],
      ]);
      expect((await store.telemetry.logs(b.id, { limit: 10 })).map((l) => l.line)).toEqual(['z']);
    });

    it('stores a batch retried 8 times at once through two hubs exactly once', async () => {
      const { store, another } = await open();
      const other = await another();
      const v = await addVessel(store, 'ship-a');
      const records = batch(200);
      const r = await race(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? other : store).telemetry.ingest(v.id, meta(), records, 1000, T0)),
      );
      expect(r.codes).toEqual([]);
      expect(r.won.reduce((n, x) => n + x.stored, 0)).toBe(200);
      expect(r.won.reduce((n, x) => n + x.duplicates, 0)).toBe(7 * 200);
      expect(await counted(store, v.id)).toEqual({ records: 200, bytes: 8000 });
      expect(await store.telemetry.logs(v.id, { limit: 1000 })).toHaveLength(67);
      expect(await store.telemetry.events(v.id, { limit: 1000 })).toHaveLength(66);
    });

    it('returns the newest lines oldest first, filtered by service, time and words', async () => {
      const { store } = await open();
      const [v, w] = [await addVessel(store, 'a'), await addVessel(store, 'b')];
      const lines = [
        log(1, T0 + 10, 'pump started', 'engine'),
        log(2, T0 + 20, 'disk full on /var', 'portal', 'warn'),
        log(3, T0 + 30, 'pump stopped: pressure low', 'engine', 'warn'),
        log(4, T0 + 30, 'user "root" OR admin logged in', 'portal'),
        log(5, T0 + 40, 'pump pressure ok', 'engine'),
      ];
      await store.telemetry.ingest(v.id, meta(), lines, 100, T0 + 100);
      await store.telemetry.ingest(w.id, meta(), [log(1, T0, 'pump elsewhere')], 100, T0 + 100);
      const q = async (query: Omit<Parameters<HubStore['telemetry']['logs']>[1], 'limit'> & { limit?: number }) =>
        (await store.telemetry.logs(v.id, { limit: 100, ...query })).map((l) => l.seq);
      expect(await q({})).toEqual([1, 2, 3, 4, 5]);
      expect(await q({ limit: 2 })).toEqual([4, 5]);
      expect(await q({ service: 'engine' })).toEqual([1, 3, 5]);
      expect(await q({ since: T0 + 20, until: T0 + 40 })).toEqual([2, 3, 4]);
      expect(await q({ grep: 'pump' })).toEqual([1, 3, 5]);
      expect(await q({ grep: 'pressure pump' })).toEqual([3, 5]);
      expect(await q({ grep: 'pump', service: 'engine', limit: 1 })).toEqual([5]);
      expect(await q({ grep: 'elsewhere' })).toEqual([]);
      // Query syntax and NUL are text, never an error.
      expect(await q({ grep: '"root" OR' })).toEqual([4]);
      for (const grep of ['NEAR(pump', 'pump*', '"', "' OR 1=1--", 'a\0b', 'col:pump', '-pump', '^pump'])
        await expect(store.telemetry.logs(v.id, { limit: 10, grep })).resolves.toBeInstanceOf(Array);
      expect((await store.telemetry.logs(v.id, { limit: 1 }))[0]).toEqual({
        epoch: EPOCH,
        seq: 5,
        service: 'engine',
        level: 'info',
        line: 'pump pressure ok',
        at: T0 + 40,
        receivedAt: T0 + 100,
        bootId: 'boot-1',
      });
    });

    it('returns events newest first, paged back by id, with a body that is not JSON kept as text', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'a');
      const evs = [
        event(1, T0 + 1, 'deploy', '{"release":"sms@1"}'),
        event(2, T0 + 2, 'rollback', 'not json {'),
        event(3, T0 + 3, 'deploy', '{"release":"sms@2"}'),
      ];
      await store.telemetry.ingest(v.id, meta(), evs, 10, T0 + 9);
      const all = await store.telemetry.events(v.id, { limit: 10 });
      expect(all.map((e) => e.seq)).toEqual([3, 2, 1]);
      expect(all[1]).toMatchObject({
        type: 'rollback',
        data: 'not json {',
        at: T0 + 2,
        receivedAt: T0 + 9,
        epoch: EPOCH,
      });
      expect(all[0]!.data).toEqual({ release: 'sms@2' });
      const page1 = await store.telemetry.events(v.id, { limit: 2 });
      const page2 = await store.telemetry.events(v.id, { limit: 2, before: page1.at(-1)!.id });
      expect([...page1, ...page2].map((e) => e.seq)).toEqual([3, 2, 1]);
    });

    it('returns one metric from a time on, oldest first, and prunes by time received', async () => {
      const { store } = await open();
      const v = await addVessel(store, 'a');
      await store.telemetry.ingest(
        v.id,
        meta(),
        [
          metric(1, T0 + 30, 'cpu', 3, { svc: 'p' }),
          metric(2, T0 + 10, 'cpu', 1),
          metric(3, T0 + 20, 'mem', 9),
          metric(4, T0 + 20, 'cpu', 2),
        ],
        10,
        T0 + 100,
      );
      await store.telemetry.ingest(v.id, meta(), [metric(5, T0 + 40, 'cpu', 4)], 10, T0 + 200);
      const points = await store.telemetry.metrics(v.id, { name: 'cpu', since: 0, limit: 100 });
      expect(points).toEqual([
        { labels: {}, value: 1, at: T0 + 10 },
        { labels: {}, value: 2, at: T0 + 20 },
        { labels: { svc: 'p' }, value: 3, at: T0 + 30 },
        { labels: {}, value: 4, at: T0 + 40 },
      ]);
      expect(
        (await store.telemetry.metrics(v.id, { name: 'cpu', since: T0 + 20, limit: 2 })).map((p) => p.value),
      ).toEqual([2, 3]);
      expect(await store.telemetry.pruneMetrics(T0 + 150)).toBe(4);
      expect((await store.telemetry.metrics(v.id, { name: 'cpu', since: 0, limit: 100 })).map((p) => p.value)).toEqual([
        4,
      ]);
      expect(await store.telemetry.metrics(v.id, { name: 'mem', since: 0, limit: 100 })).toEqual([]);
    });

    it('keeps per-vessel counters, listed for the fleet by name', async () => {
      const { store } = await open();
      const [b, a] = [await addVessel(store, 'b'), await addVessel(store, 'a')];
      await addVessel(store, 'c');
      expect(await store.telemetry.counters(a.id)).toBeUndefined();
      await store.telemetry.ingest(b.id, { epoch: EPOCH, backlog: 7, drops: {} }, batch(3), 99, T0 + 5);
      await store.telemetry.ingest(a.id, meta(2), [], 11, T0 + 6);
      expect(await store.telemetry.fleetCounters()).toEqual([
        {
          vesselId: a.id,
          vessel: 'a',
          backlog: 2,
          drops: { logs: { records: 3, bytes: 300 } },
          recordsReceived: 0,
          bytesReceived: 11,
          lastBatchAt: T0 + 6,
        },
        {
          vesselId: b.id,
          vessel: 'b',
          backlog: 7,
          drops: {},
          recordsReceived: 3,
          bytesReceived: 99,
          lastBatchAt: T0 + 5,
        },
      ]);
    });
  });
}
