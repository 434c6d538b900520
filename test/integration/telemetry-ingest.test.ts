import { brotliCompressSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../../shared/protocol/telemetry-wire.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';
import { paths } from '../../shared/protocol/routes.js';
import { TELEMETRY_MAX_DECOMPRESSED } from '../../hub/limits.js';

const TYPE = 'application/vnd.tender.telemetry+json';

function batch(seqs: number[], body = (s: number) => `line ${s}`) {
  return encodeBatch(
    '0123456789abcdef',
    seqs.map((s) => ({
      seq: s,
      ts: 1_700_000_000_000 + s,
      cls: 1,
      kind: 'log' as const,
      source: 'web',
      body: body(s),
      bootId: 'boot',
    })),
    {},
    0,
  );
}

async function post(hub: TestHub, v: TestVessel, raw: Buffer, encoding: string, name = v.name) {
  const url = paths.vesselTelemetry(name);
  const { headers } = v.sign('POST', url);
  const signed = (await import('../../shared/protocol/vessel-auth.js')).signVesselRequest(
    v.key,
    v.id,
    'POST',
    url,
    Date.now(),
    raw,
  );
  return hub.app.inject({
    method: 'POST',
    url,
    headers: { ...headers, ...signed, 'content-type': TYPE, 'content-encoding': encoding },
    payload: raw,
  });
}

async function logs(hub: TestHub, name: string, q = '') {
  const r = await hub.app.inject({
    url: `${paths.vesselLogs(name, { limit: 10000 })}${q}`,
    headers: { authorization: `Bearer ${hub.token('viewer')}` },
  });
  return r.json().logs as { line: string; at: string }[];
}

describe('hub: telemetry ingest', () => {
  it('stores a replayed batch once', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a');
    const raw = brotliCompressSync(Buffer.from(JSON.stringify(batch([1, 2, 3]))));
    const first = await post(hub, v, raw, 'br');
    expect(first.json()).toEqual({ stored: 3, duplicates: 0 });
    const again = await post(hub, v, raw, 'br');
    expect(again.json()).toEqual({ stored: 0, duplicates: 3 });
    const overlap = await post(hub, v, gzipSync(Buffer.from(JSON.stringify(batch([3, 4])))), 'gzip');
    expect(overlap.json()).toEqual({ stored: 1, duplicates: 1 });
    expect((await logs(hub, 'ship-a')).map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3', 'line 4']);
  });

  it('keeps records with old and future vessel timestamps, and searches text', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a');
    const b = batch([1, 2], (s) => (s === 1 ? 'engine temperature high' : 'all normal'));
    b.ts0 = Date.parse('2019-01-01T00:00:00Z');
    b.ts = [0, Date.parse('2031-01-01T00:00:00Z') - b.ts0];
    expect((await post(hub, v, gzipSync(Buffer.from(JSON.stringify(b))), 'gzip')).statusCode).toBe(200);
    const all = await logs(hub, 'ship-a');
    expect(all.map((l) => l.at)).toEqual(['2019-01-01T00:00:00.000Z', '2031-01-01T00:00:00.000Z']);
    expect((await logs(hub, 'ship-a', '&grep=temperature')).map((l) => l.line)).toEqual(['engine temperature high']);
    // FTS syntax in user text is treated as words, not operators.
    expect(
      (
        await hub.app.inject({
          url: `${paths.vesselLogs('ship-a')}?grep=%22OR%20*`,
          headers: { authorization: `Bearer ${hub.token('viewer')}` },
        })
      ).statusCode,
    ).toBe(200);
  });

  it('refuses a gzip bomb with 413 and a truncated body with 400', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a');
    const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, 0x20));
    expect(bomb.byteLength).toBeLessThan(1024 * 1024);
    const r = await post(hub, v, bomb, 'gzip');
    expect(r.statusCode).toBe(413);
    expect(r.json().message).toBe(`batch inflates past the ${TELEMETRY_MAX_DECOMPRESSED}-byte limit`);
    const whole = gzipSync(Buffer.from(JSON.stringify(batch([1]))));
    const cut = await post(hub, v, whole.subarray(0, whole.byteLength - 10), 'gzip');
    expect(cut.statusCode).toBe(400);
    const garbage = await post(hub, v, gzipSync(Buffer.from('{"epoch":"x"')), 'gzip');
    expect(garbage.statusCode).toBe(400);
    expect(await logs(hub, 'ship-a')).toEqual([]);
  });

  it("refuses a batch sent to another vessel's path (404) and from ops credentials (403)", async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    await enrolVessel(hub, 'ship-b');
    const raw = gzipSync(Buffer.from(JSON.stringify(batch([1]))));
    expect((await post(hub, a, raw, 'gzip', 'ship-b')).statusCode).toBe(404);
    const ops = await hub.app.inject({
      method: 'POST',
      url: paths.vesselTelemetry('ship-a'),
      headers: { authorization: `Bearer ${hub.token('admin')}`, 'content-type': TYPE, 'content-encoding': 'gzip' },
      payload: raw,
    });
    expect(ops.statusCode).toBe(403);
    expect(await logs(hub, 'ship-b')).toEqual([]);
  });

  it('rate-limits one vessel flooding telemetry with 429 and Retry-After, without touching another', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const b = await enrolVessel(hub, 'ship-b');
    const raw = gzipSync(Buffer.from(JSON.stringify(batch([1]))));
    let limited;
    for (let i = 0; i < 200 && !limited; i++) {
      const r = await post(hub, a, raw, 'gzip');
      if (r.statusCode === 429) limited = r;
    }
    expect(limited).toBeDefined();
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post(hub, b, raw, 'gzip')).statusCode).toBe(200);
  });
});
