import { brotliCompressSync, constants as zc } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeBatch, type TelemetryBatch } from '../../shared/protocol/telemetry-wire.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { paths } from '../../shared/protocol/routes.js';
import type { CommandContext } from '../../shared/cli.js';
import { shoreLogs } from '../../hub/commands/logs-query.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';

const TYPE = 'application/vnd.tender.telemetry+json';
const EPOCH = '0123456789abcdef';

function records(ts: number, seq0 = 1) {
  return (['log', 'event', 'metric'] as const).map((kind, i) => ({
    seq: seq0 + i,
    ts,
    cls: kind === 'log' ? 1 : kind === 'event' ? 4 : 3,
    kind,
    source: kind === 'log' ? 'web' : kind === 'event' ? 'app.started' : 'cpu_load',
    body: kind === 'metric' ? '{"v":1,"l":{}}' : kind === 'event' ? '{"x":1}' : `line at ${ts}`,
    bootId: 'boot',
  }));
}

async function post(hub: TestHub, v: TestVessel, raw: Buffer) {
  const url = paths.vesselTelemetry(v.name);
  const headers = signVesselRequest(v.key, v.id, 'POST', url, Date.now(), raw);
  return hub.app.inject({
    method: 'POST',
    url,
    headers: { ...headers, 'content-type': TYPE, 'content-encoding': 'br' },
    payload: raw,
  });
}
// Quality 5 keeps the test quick; a 59 MB run of spaces still compresses to under a hundred bytes.
const br = (b: TelemetryBatch | Buffer) =>
  brotliCompressSync(Buffer.isBuffer(b) ? b : Buffer.from(JSON.stringify(b)), {
    params: { [zc.BROTLI_PARAM_QUALITY]: 5, [zc.BROTLI_PARAM_LGWIN]: 24 },
  });

async function views(hub: TestHub, name: string) {
  const auth = { authorization: `Bearer ${hub.token('viewer')}` };
  const get = (url: string) => hub.app.inject({ url, headers: auth });
  return {
    logs: await get(paths.vesselLogs(name, { limit: 100 })),
    events: await get(paths.vesselEvents(name)),
    metrics: await get(paths.vesselMetrics(name, { name: 'cpu_load', since: '1970-01-01T00:00:00.000Z' })),
    vessel: await get(paths.vessel(name)),
  };
}

describe('hub: telemetry bounds at ingest (ATTACKS.md 39)', () => {
  it.each([
    ['9e15 (past what a Date holds)', 9e15],
    ['-9e15', -9e15],
    ['1970 (a clock never set)', 0],
    ['the year 3000', Date.UTC(3000, 0, 1)],
  ])('stores a record timed %s at receipt time; every view and `tender logs --vessel` still answer', async (_, ts) => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-t');
    const before = Date.now();
    const r = await post(hub, v, br(encodeBatch(EPOCH, records(ts), {}, 0)));
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ stored: 3, duplicates: 0 });
    // A good record after the bad one: the views must keep answering (the bug made them 500 from then on).
    expect((await post(hub, v, br(encodeBatch(EPOCH, records(Date.now(), 10), {}, 0)))).statusCode).toBe(200);
    const w = await views(hub, 'ship-t');
    for (const [name, res] of Object.entries(w)) expect(res.statusCode, `${name}: ${res.body}`).toBe(200);
    const logs = w.logs.json().logs as { line: string; at: string }[];
    expect(logs).toHaveLength(2);
    const bad = logs.find((l) => l.line === `line at ${ts}`)!;
    expect(Date.parse(bad.at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(bad.at)).toBeLessThanOrEqual(Date.now() + 1000);
    expect(w.events.json().events).toHaveLength(2);
    expect(w.metrics.json().points).toHaveLength(2);
    const base = await hub.listen();
    const ctx = {
      values: { hub: base, token: hub.token('viewer') },
      positionals: [],
      json: true,
      env: {},
    } as unknown as CommandContext;
    expect((await shoreLogs(ctx, 'ship-t', { limit: 100 })).logs).toHaveLength(2);
  });

  it('keeps plausible odd times as sent: a clock years ahead, an old one', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-t');
    const ahead = Date.now() + 5 * 365 * 86_400_000;
    const b = encodeBatch(EPOCH, [...records(Date.UTC(2001, 0, 1)), ...records(ahead, 4)], {}, 0);
    expect((await post(hub, v, br(b))).statusCode).toBe(200);
    const logs = (await views(hub, 'ship-t')).logs.json().logs as { at: string }[];
    expect(logs.map((l) => l.at)).toEqual(['2001-01-01T00:00:00.000Z', new Date(ahead).toISOString()]);
  });

  it('refuses sequence numbers and times that overflow as the deltas add up (400, nothing stored)', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-t');
    const big = encodeBatch(EPOCH, records(Date.now()), {}, 0);
    big.seq0 = Number.MAX_SAFE_INTEGER - 1;
    const r = await post(hub, v, br(big));
    expect(r.statusCode, r.body).toBe(400);
    const drift = encodeBatch(EPOCH, records(Date.now()), {}, 0);
    drift.ts = [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0];
    // Times that overflow are out of range, not an error: stored at receipt time.
    expect((await post(hub, v, br(drift))).statusCode).toBe(200);
    const w = await views(hub, 'ship-t');
    expect(w.logs.statusCode).toBe(200);
    expect(w.logs.json().logs).toHaveLength(1);
  });
});

describe('hub: inflated bytes per vessel per minute', () => {
  const LIMITS = { TELEMETRY_MAX_DECOMPRESSED: 2 * 1024 * 1024, TELEMETRY_INFLATED_BYTES_PER_MINUTE: 3 * 1024 * 1024 };

  it('refuses a tiny brotli bomb with 413, and counts what it inflated against the vessel', async () => {
    let now = Date.now();
    const hub = await startHub({ limits: LIMITS, now: () => now });
    const a = await enrolVessel(hub, 'ship-a');
    const b = await enrolVessel(hub, 'ship-b');
    const bomb = br(Buffer.alloc(59 * 1024 * 1024, 0x20));
    expect(bomb.byteLength).toBeLessThan(1024);
    const r = await post(hub, a, bomb);
    expect(r.statusCode, r.body).toBe(413);
    expect(r.json().message).toBe(`batch inflates past the ${LIMITS.TELEMETRY_MAX_DECOMPRESSED}-byte limit`);
    // Under the per-batch cap but heavy: whitespace that parses to a valid batch.
    const json = JSON.stringify(encodeBatch(EPOCH, records(now), {}, 0));
    const padded = Buffer.concat([Buffer.from(json.slice(0, -1)), Buffer.alloc(1_500_000, 0x20), Buffer.from('}')]);
    expect((await post(hub, a, br(padded))).statusCode).toBe(429);
    const small = br(encodeBatch(EPOCH, records(now, 20), {}, 0));
    const limited = await post(hub, a, small);
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json().message).toMatch(/per minute inflated budget/);
    // Another vessel is not touched; the flooding one gets its budget back after the minute.
    expect((await post(hub, b, small)).statusCode).toBe(200);
    now += 61_000;
    expect((await post(hub, a, small)).statusCode).toBe(200);
    expect((await views(hub, 'ship-a')).logs.json().logs).toHaveLength(1);
  });

  it('answers 429, not 413, to a batch that fits the per-batch cap but not what is left of the minute', async () => {
    const hub = await startHub({ limits: LIMITS });
    const a = await enrolVessel(hub, 'ship-a');
    const line = 'x'.repeat(1000);
    const big = (seq0: number) =>
      br(
        encodeBatch(
          EPOCH,
          Array.from({ length: 1500 }, (_, i) => ({
            seq: seq0 + i,
            ts: Date.now(),
            cls: 1,
            kind: 'log' as const,
            source: 'web',
            body: `${i} ${line}`,
            bootId: 'boot',
          })),
          {},
          0,
        ),
      );
    expect((await post(hub, a, big(1))).statusCode).toBe(200);
    expect((await post(hub, a, big(2000))).statusCode).toBe(200);
    // A third 1.5 MB batch passes the 2 MB cap but not the 3 MB minute: wait, do not split it.
    const third = await post(hub, a, big(4000));
    expect(third.statusCode).toBe(429);
  });
});
