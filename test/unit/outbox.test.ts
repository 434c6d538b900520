import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLASS, MAX_LINE_BYTES, openOutbox, type NewRecord } from '../../agent/telemetry/outbox.js';
import { decodeBatch, encodeBatch } from '../../shared/protocol/telemetry-wire.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually } from '../helpers/proc.js';
import { fakeHubClient } from '../helpers/fake-hub-client.js';

const log = (body: string, cls: 0 | 1 | 2 = CLASS.info): NewRecord => ({ kind: 'log', cls, source: 'web', body });

describe('outbox', () => {
  it('orders by sequence, not by the clock: a clock set back a day reorders nothing', () => {
    let clock = Date.parse('2026-11-26T12:00:00Z');
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1', now: () => clock });
    o.append([log('before')]);
    clock -= 86_400_000;
    o.append([log('after the jump')]);
    const batch = o.nextBatch(10, 1e9);
    expect(batch.map((r) => r.body)).toEqual(['before', 'after the jump']);
    expect(batch[1]!.ts).toBeLessThan(batch[0]!.ts);
    expect(batch[1]!.seq).toBeGreaterThan(batch[0]!.seq);
    o.close();
  });

  it('sends events first, then the backlog oldest first', () => {
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1' });
    o.append([log('a'), log('b')]);
    o.event('rollback', { to: '1' });
    const b = o.nextBatch(2, 1e9);
    expect(b.map((r) => r.body)).toEqual(['a', '{"to":"1"}']);
    o.close();
  });

  it('when full, drops the oldest rows of the lowest class first, counts them, and keeps events', () => {
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1', capBytes: 20_000, freeDiskFloorBytes: 0 });
    o.event('important', { n: 1 });
    for (let i = 0; i < 50; i++) o.append([log(`debug ${i} ${'x'.repeat(100)}`, CLASS.debug)]);
    for (let i = 0; i < 50; i++) o.append([log(`warn ${i} ${'x'.repeat(100)}`, CLASS.warn)]);
    for (let i = 0; i < 200; i++) o.append([log(`info ${i} ${'x'.repeat(100)}`, CLASS.info)]);
    const s = o.stats();
    expect(s.bytes).toBeLessThanOrEqual(20_000);
    expect(s.drops.debug.records).toBe(50);
    expect(s.drops.info.records).toBeGreaterThan(0);
    expect(s.drops.warn.records).toBe(0);
    expect(s.byClass.event.records).toBe(1);
    expect(s.byClass.warn.records).toBe(50);
    // What is left of info is the newest, contiguous to the end.
    const rest = o
      .nextBatch(10_000, 1e9)
      .filter((r) => r.body.startsWith('info'))
      .map((r) => Number(r.body.split(' ')[1]));
    expect(rest.at(-1)).toBe(199);
    expect(rest.length + s.drops.info.records).toBe(200);
    o.close();
  });

  it('cuts a 10 MB line with a marker instead of wedging the queue', () => {
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1' });
    o.append([log('y'.repeat(10 * 1024 * 1024))]);
    const [r] = o.nextBatch(1, 1e9);
    expect(Buffer.byteLength(r!.body)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(r!.body).toMatch(/…\[truncated by tender: 10485760 bytes\]$/);
    o.close();
  });

  it('keeps shipped lines for tender logs but never ships them again', () => {
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1' });
    o.append([log('one'), log('two')]);
    o.ack(o.nextBatch(10, 1e9).map((r) => r.seq));
    expect(o.nextBatch(10, 1e9)).toEqual([]);
    expect(o.stats().records).toBe(0);
    expect(o.recentLogs('web', 10).map((r) => r.body)).toEqual(['one', 'two']);
    o.close();
  });

  it('moves a corrupt outbox aside and starts a fresh one', () => {
    const dir = tempDir();
    const path = join(dir, 'o.db');
    writeFileSync(path, 'this is not a database'.repeat(100));
    const o = openOutbox({ path, bootId: 'b1' });
    expect(o.movedAside).toMatch(/o\.db\.corrupt-\d+$/);
    o.append([log('fresh')]);
    expect(o.stats().records).toBe(1);
    o.close();
  });

  it('encodes a batch in columns and decodes it to the same records', () => {
    const records = [
      { seq: 10, ts: 1000, cls: 1, kind: 'log' as const, source: 'web', body: 'GET / 200', bootId: 'b' },
      { seq: 12, ts: 990, cls: 4, kind: 'event' as const, source: 'rollback', body: '{}', bootId: 'b' },
      { seq: 13, ts: 1010, cls: 1, kind: 'log' as const, source: 'web', body: 'GET /x 404', bootId: 'c' },
    ];
    const b = encodeBatch('0123456789abcdef', records, {}, 5);
    expect(b.sources).toEqual(['web', 'rollback']);
    expect(decodeBatch(b)).toEqual(records);
  });
});

describe('shipper', () => {
  it('moves a batch the hub calls malformed to the dead-letter table instead of blocking the queue', async () => {
    const { shipLoop } = await import('../../agent/telemetry/shipper.js');
    const { createLogger } = await import('../../shared/log.js');
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1' });
    o.append([log('bad'), log('worse')]);
    const calls: number[] = [];
    const client = fakeHubClient(async () => {
      calls.push(1);
      return {
        status: calls.length === 1 ? 400 : 200,
        headers: new Headers(),
        body: Buffer.from('{"message":"batch: columns differ"}'),
      };
    });
    const ac = new AbortController();
    const done = shipLoop({
      client: () => client as never,
      outbox: o,
      vesselName: 'v',
      log: createLogger('t', 'silent'),
      signal: ac.signal,
      maxBytesPerSecond: 0,
      maxBackoffMs: 60_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    o.append([log('next')]);
    await new Promise((r) => setTimeout(r, 1500));
    ac.abort();
    await done;
    const dl = o.db.prepare('SELECT reason, records FROM dead_letter').all() as { reason: string; records: number }[];
    expect(dl).toEqual([{ reason: 'hub answered 400: {"message":"batch: columns differ"}', records: 2 }]);
    expect(o.stats().records).toBe(0);
    expect(calls.length).toBe(2);
    o.close();
  });

  it('retries at once when the hub answers the sync loop again, not after the backoff it grew while down', async () => {
    const { shipLoop } = await import('../../agent/telemetry/shipper.js');
    const { Wakeup } = await import('../../agent/backoff.js');
    const { createLogger } = await import('../../shared/log.js');
    const o = openOutbox({ path: join(tempDir(), 'o.db'), bootId: 'b1' });
    o.append([log('queued at sea')]);
    let linkUp = false;
    let calls = 0;
    const client = fakeHubClient(async () => {
      calls++;
      if (!linkUp) throw new Error('connect ECONNREFUSED');
      return { status: 200, headers: new Headers(), body: Buffer.from('{}') };
    });
    const bell = new Wakeup();
    const ac = new AbortController();
    // A first retry no sooner than 30 s: only the bell can make it sooner.
    const done = shipLoop({
      client: () => client as never,
      outbox: o,
      vesselName: 'v',
      log: createLogger('t', 'silent'),
      signal: ac.signal,
      maxBytesPerSecond: 0,
      backoffBaseMs: 60_000,
      maxBackoffMs: 60_000,
      linkUp: bell,
    });
    await eventually(async () => calls === 1);
    linkUp = true;
    bell.ring();
    await eventually(async () => o.stats().records === 0, 10_000, 50);
    expect(calls).toBe(2);
    ac.abort();
    await done;
    o.close();
  });
});
