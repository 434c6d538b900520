/**
 * /health while the hub is busy (issue 10 item 6, ATTACKS.md 39): the hub serves 20 vessels that sync
 * (signed desired-state poll and status report, in a loop) and a prober asks /health. Three phases per
 * run, each against the first as its baseline in the same run:
 *   A. baseline: vessels sync, /health probed by 2 clients;
 *   B. telemetry flood: as A, plus one vessel posting telemetry as fast as 4 connections allow, alternating
 *      a 1,000-record batch with a compression bomb (brotli of a 60 MB batch, about 300 bytes on the wire);
 *   C. /health flood: as A, but /health hammered by 32 clients; what the vessels' sync round trips cost.
 * Reports the median over the runs of /health p50/p99 and sync p99 per phase, and the ratios to A.
 *
 *   npx tsx bench/health-flood.ts [--runs 5] [--seconds 8]
 */
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants as zc } from 'node:zlib';
import { buildHub } from '../hub/app.js';
import { addRoot } from '../hub/roots.js';
import { newEnrolmentToken } from '../hub/enrolment.js';
import { generateKey, type PrivateKey } from '../shared/trust/keys.js';
import { signVesselRequest } from '../shared/protocol/vessel-auth.js';
import { encodeBatch } from '../shared/protocol/telemetry-wire.js';
import { MEDIA } from '../shared/protocol/http.js';
import { paths } from '../shared/protocol/routes.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../test/helpers/keys.js';
import { machine, median, percentile } from './lib.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) || dflt : dflt;
};
const RUNS = arg('runs', 5);
const SECONDS = arg('seconds', 8);
const VESSELS = 20;

interface V {
  name: string;
  id: string;
  key: PrivateKey;
}

function call(
  agent: Agent,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<{ status: number; ms: number }> {
  const s = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - s) / 1e6 }));
    });
    req.on('error', () => resolve({ status: 0, ms: Number(process.hrtime.bigint() - s) / 1e6 }));
    req.end(body);
  });
}

const signed = (v: V, method: string, path: string, body?: Buffer) => ({
  ...signVesselRequest(v.key, v.id, method, path, Date.now(), body),
  ...(body ? { 'content-type': MEDIA.json } : {}),
});

function statusBody(): Buffer {
  return Buffer.from(
    JSON.stringify({
      agentVersion: 'bench',
      current: null,
      previous: null,
      pending: null,
      held: false,
      rootVersion: 1,
      backlog: 0,
      services: [],
      bootId: 'bench',
      reportedAt: new Date().toISOString(),
    }),
  );
}

let seq = 1;
function realBatch(): Buffer {
  const now = Date.now();
  const records = Array.from({ length: 1000 }, (_, i) => ({
    seq: seq++,
    ts: now + i,
    cls: 1,
    kind: 'log' as const,
    source: 'web',
    body: `GET /api/work-orders/${i} 200 ${i % 97} ms`,
    bootId: 'bench',
  }));
  return brotliCompressSync(Buffer.from(JSON.stringify(encodeBatch('0123456789abcdef', records, {}, 0))), {
    params: { [zc.BROTLI_PARAM_QUALITY]: 5 },
  });
}
// A batch whose one record body is 60 MB of spaces: a few hundred bytes on the wire.
const BOMB = brotliCompressSync(
  Buffer.concat([
    Buffer.from(
      '{"epoch":"0123456789abcdef","seq0":1,"sources":["x"],"boots":["b"],"drops":{},"backlog":0,"r":[[0,0,1,"',
    ),
    Buffer.alloc(60 << 20, 0x20),
    Buffer.from('"]]}'),
  ]),
  { params: { [zc.BROTLI_PARAM_QUALITY]: 5, [zc.BROTLI_PARAM_LGWIN]: 24 } },
);

async function phase(
  port: number,
  vessels: V[],
  opts: { healthClients: number; flood?: V },
): Promise<{ health: number[]; sync: number[]; flood: Record<number, number> }> {
  const stopAt = Date.now() + SECONDS * 1000;
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const health: number[] = [];
  const sync: number[] = [];
  const flood: Record<number, number> = {};
  const prober = async () => {
    while (Date.now() < stopAt) health.push((await call(agent, port, 'GET', '/health')).ms);
  };
  const syncer = async (v: V) => {
    while (Date.now() < stopAt) {
      const d = paths.vesselDesired(v.name);
      sync.push((await call(agent, port, 'GET', d, signed(v, 'GET', d))).ms);
      const s = paths.vesselStatus(v.name);
      const body = statusBody();
      sync.push((await call(agent, port, 'POST', s, signed(v, 'POST', s, body), body)).ms);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const flooder = async (v: V) => {
    let n = 0;
    while (Date.now() < stopAt) {
      const url = paths.vesselTelemetry(v.name);
      const body = n++ % 2 ? realBatch() : BOMB;
      const headers = {
        ...signVesselRequest(v.key, v.id, 'POST', url, Date.now(), body),
        'content-type': MEDIA.telemetry,
        'content-encoding': 'br',
      };
      const r = await call(agent, port, 'POST', url, headers, body);
      flood[r.status] = (flood[r.status] ?? 0) + 1;
    }
  };
  await Promise.all([
    ...Array.from({ length: opts.healthClients }, prober),
    ...vessels.map(syncer),
    ...(opts.flood ? Array.from({ length: 4 }, () => flooder(opts.flood!)) : []),
  ]);
  agent.destroy();
  return { health, sync, flood };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tender-bench-health-'));
  // Silent by default (buildHub's logger): the log would cost the same in every phase.
  const { app, deps } = await buildHub({ dataDir: join(dir, 'hub') });
  const keys = makeKeys();
  const now = Date.now();
  await addRoot(deps.store, signedRoot(rootPayloadFor(1, keys), keys.root), now);
  const rootBytes = (await deps.store.roots.get(1))!;
  const vessels: V[] = [];
  for (let i = 0; i <= VESSELS; i++) {
    const tok = newEnrolmentToken('online', 60_000, { version: 1, bytes: rootBytes }, now);
    const name = `bench-${i}`;
    const rec = await deps.store.vessels.create({ name, groups: [], token: tok.stored }, now);
    const key = generateKey().key;
    await deps.store.enrolment.claim(
      { tokenHash: tok.stored.tokenHash, publicKey: key.publicRaw.toString('base64'), address: '127.0.0.1' },
      now,
    );
    vessels.push({ name, id: rec.id, key });
  }
  const floodVessel = vessels.pop()!;
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;

  const rows: Record<'A' | 'B' | 'C', { h50: number[]; h99: number[]; s99: number[]; n: number[] }> = {
    A: { h50: [], h99: [], s99: [], n: [] },
    B: { h50: [], h99: [], s99: [], n: [] },
    C: { h50: [], h99: [], s99: [], n: [] },
  };
  const floodCounts: Record<number, number> = {};
  for (let run = 0; run < RUNS; run++) {
    for (const p of ['A', 'B', 'C'] as const) {
      const r = await phase(port, vessels, {
        healthClients: p === 'C' ? 32 : 2,
        flood: p === 'B' ? floodVessel : undefined,
      });
      rows[p].h50.push(percentile(r.health, 50));
      rows[p].h99.push(percentile(r.health, 99));
      rows[p].s99.push(percentile(r.sync, 99));
      rows[p].n.push(r.health.length);
      for (const [k, c] of Object.entries(r.flood)) floodCounts[Number(k)] = (floodCounts[Number(k)] ?? 0) + c;
      // Let the per-minute inflate budget and the rate limits of one phase not leak into the next.
      await new Promise((res) => setTimeout(res, 1000));
    }
    process.stderr.write(`run ${run + 1}/${RUNS} done\n`);
  }
  await app.close();
  rmSync(dir, { recursive: true, force: true });

  const f = (x: number) => x.toFixed(2);
  const m = (p: 'A' | 'B' | 'C') => ({
    h50: median(rows[p].h50),
    h99: median(rows[p].h99),
    s99: median(rows[p].s99),
    n: median(rows[p].n),
  });
  const [a, b, c] = [m('A'), m('B'), m('C')];
  console.log(`machine: ${machine()}; ${RUNS} runs of ${SECONDS} s per phase; ${VESSELS} vessels syncing`);
  console.log('| phase | /health p50 ms | /health p99 ms | /health requests | sync p99 ms |');
  console.log('|---|---|---|---|---|');
  console.log(`| A baseline (2 probes) | ${f(a.h50)} | ${f(a.h99)} | ${a.n} | ${f(a.s99)} |`);
  const x = (v: number, base: number) => `${f(v)} (${(v / base).toFixed(2)}× A)`;
  console.log(`| B telemetry flood from one vessel | ${f(b.h50)} | ${x(b.h99, a.h99)} | ${b.n} | ${x(b.s99, a.s99)} |`);
  console.log(`| C /health flood (32 clients) | ${f(c.h50)} | ${f(c.h99)} | ${c.n} | ${x(c.s99, a.s99)} |`);
  console.log(`telemetry flood answers (all runs): ${JSON.stringify(floodCounts)}`);
}

await main();
