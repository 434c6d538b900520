import { brotliCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../../shared/protocol/telemetry-wire.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { signBytes } from '../../shared/trust/keys.js';
import { paths } from '../../shared/protocol/routes.js';
import { buildHub } from '../../hub/app.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';

const TELEMETRY = 'application/vnd.tender.telemetry+json';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

type Captured = { method: 'GET' | 'POST'; url: string; headers: Record<string, string>; payload?: string | Buffer };

function telemetryRequest(v: TestVessel, seq: number): Captured {
  const url = paths.vesselTelemetry(v.name);
  const records = [
    { seq, ts: Date.now(), cls: 1, kind: 'log' as const, source: 'web', body: `line ${seq}`, bootId: 'boot' },
  ];
  const raw = brotliCompressSync(Buffer.from(JSON.stringify(encodeBatch('0123456789abcdef', records, {}, 0))));
  const headers = signVesselRequest(v.key, v.id, 'POST', url, Date.now(), raw);
  return {
    method: 'POST',
    url,
    headers: { ...headers, 'content-type': TELEMETRY, 'content-encoding': 'br' },
    payload: raw,
  };
}

function signed(v: TestVessel, method: 'GET' | 'POST', url: string, body?: unknown, ts?: number): Captured {
  const s = v.sign(method, url, body, ts);
  return { method, url, headers: s.headers, payload: s.payload };
}

const report = (agentVersion: string) => ({
  agentVersion,
  current: null,
  previous: null,
  pending: null,
  held: false,
  rootVersion: 1,
  backlog: 0,
  services: [],
  bootId: 'boot',
  reportedAt: new Date().toISOString(),
});

const send = (hub: TestHub, c: Captured) =>
  hub.app.inject({ method: c.method, url: c.url, headers: c.headers, payload: c.payload });

async function statusOf(hub: TestHub, name: string) {
  const res = await hub.app.inject({
    url: paths.vessel(name),
    headers: { authorization: `Bearer ${hub.token('viewer')}` },
  });
  return res.json() as { agentVersion: string | null; lastContact: string | null };
}

describe('hub: a signed vessel request counts once inside its clock window (ATTACKS.md 44)', () => {
  it('refuses the second use of every kind of captured request, and the replay changes nothing', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-r');
    const requests: [string, Captured][] = [
      ['status report', signed(v, 'POST', paths.vesselStatus(v.name), report('1.0.0'))],
      ['desired state', signed(v, 'GET', paths.vesselDesired(v.name))],
      ['own vessel view', signed(v, 'GET', paths.vessel(v.name))],
      ['root', signed(v, 'GET', paths.root(1))],
      ['telemetry batch', telemetryRequest(v, 1)],
      ['pack request', signed(v, 'POST', paths.vesselPacks(v.name), { release: 'web@1.0.0', digests: [] })],
    ];
    for (const [what, c] of requests) {
      const first = await send(hub, c);
      expect(first.statusCode, `${what}: first use ${first.body}`).toBeLessThan(500);
      if (what === 'telemetry batch') expect(first.statusCode, first.body).toBeLessThan(300);
      const again = await send(hub, c);
      expect(again.statusCode, `${what}: replay`).toBe(401);
      expect(again.json()).toEqual({ error: 'unauthorized', message: 'missing, invalid or expired credentials' });
    }
    // The replayed telemetry batch stored nothing a second time.
    const logs = await hub.app.inject({
      url: paths.vesselLogs(v.name, { limit: 100 }),
      headers: { authorization: `Bearer ${hub.token('viewer')}` },
    });
    expect(logs.statusCode).toBe(200);
    expect(JSON.stringify(logs.json()).match(/line 1/g)).toHaveLength(1);
    // Genuine requests signed a moment later still pass: each carries its own nonce.
    for (let i = 0; i < 3; i++)
      expect((await send(hub, signed(v, 'GET', paths.vesselDesired(v.name)))).statusCode).toBe(200);
  });

  it('refuses a replayed v1 request (no nonce): Ed25519 signs the same bytes to the same signature', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-v1');
    const url = paths.vesselDesired(v.name);
    const ts = Date.now();
    const sig = signBytes(v.key, Buffer.from(`tender-vessel-v1\nGET\n${url}\n${ts}\n${EMPTY}`)).toString('base64');
    const headers = { authorization: `Tender-Vessel id=${v.id}, ts=${ts}, sig=${sig}` };
    expect((await hub.app.inject({ url, headers })).statusCode).toBe(200);
    expect((await hub.app.inject({ url, headers })).statusCode).toBe(401);
  });

  it('refuses a replay on a second hub process over the same database', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-two');
    const other = await buildHub({ dataDir: hub.dataDir, ...(await hub.sameData()) });
    try {
      const c = signed(v, 'GET', paths.vesselDesired(v.name));
      expect((await send(hub, c)).statusCode).toBe(200);
      const res = await other.app.inject({ method: c.method, url: c.url, headers: c.headers });
      expect(res.statusCode).toBe(401);
      // The other hub knows the vessel (the same data): a fresh request from it is answered.
      const fresh = signed(v, 'GET', paths.vesselDesired(v.name));
      expect(
        (await other.app.inject({ method: fresh.method, url: fresh.url, headers: fresh.headers })).statusCode,
      ).toBe(200);
    } finally {
      await other.app.close();
    }
  });

  it('keeps the newer status report when an older one (late, or captured earlier) arrives after it', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-o');
    const url = paths.vesselStatus(v.name);
    const now = Date.now();
    const older = signed(v, 'POST', url, report('1.0.0-older'), now - 60_000);
    const newer = signed(v, 'POST', url, report('1.0.0-newer'), now);
    expect((await send(hub, newer)).statusCode).toBe(204);
    // Accepted (a late report is not an error for the vessel) but it overwrites nothing.
    expect((await send(hub, older)).statusCode).toBe(204);
    expect((await statusOf(hub, v.name)).agentVersion).toBe('1.0.0-newer');
    const later = signed(v, 'POST', url, report('1.0.1'), now + 1000);
    expect((await send(hub, later)).statusCode).toBe(204);
    expect((await statusOf(hub, v.name)).agentVersion).toBe('1.0.1');
  });
});
