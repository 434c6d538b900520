/**
 * Telemetry benchmarks (issue 5), each against its baseline in the same run, median of several runs:
 * 1. outbox ingest rate for 200-byte records vs the raw better-sqlite3 ceiling (batches of 1,000);
 * 2. bytes on the wire per record for realistic container logs (columnar batch, brotli);
 * 3. draining a backlog through the link simulator at 256 kbit/s and 700 ms round trip: link utilisation.
 * Usage: npx tsx bench/telemetry.ts
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { openOutbox, CLASS, type NewRecord } from '../agent/telemetry/outbox.js';
import { compressBatch, shipLoop, type ShipStats } from '../agent/telemetry/shipper.js';
import { encodeBatch } from '../shared/protocol/telemetry-wire.js';
import { HubClient } from '../agent/hub-client.js';
import { buildHub } from '../hub/app.js';
import { addRoot } from '../hub/roots.js';
import { newEnrolmentToken } from '../hub/enrolment.js';
import { generateKey } from '../shared/trust/keys.js';
import { createLogger } from '../shared/log.js';
import { LinkSim } from '../test/link-sim.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../test/helpers/keys.js';
import { machine, median } from './lib.js';

const dir = mkdtempSync(join(tmpdir(), 'tender-bench-tele-'));

// ---- realistic container logs: an HTTP service, a Java-ish app, a sensor collector
let rnd = 42;
const r = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
const paths = [
  '/api/work-orders',
  '/api/equipment/1234/history',
  '/api/sensors/latest',
  '/health',
  '/static/app.js',
  '/api/work-orders/98765',
  '/login',
];
let t = Date.parse('2026-11-20T00:00:00Z');
function realisticLine(i: number): { source: string; body: string; cls: 1 | 2 } {
  t += Math.floor(r() * 40);
  const iso = new Date(t).toISOString();
  switch (i % 3) {
    case 0:
      return {
        source: 'portal',
        cls: 1,
        body:
          `10.0.${Math.floor(r() * 4)}.${Math.floor(r() * 250)} - - [${iso}] "GET ` +
          `${pick(paths)} HTTP/1.1" ${pick([200, 200, 200, 304, 404])} ` +
          `${Math.floor(r() * 20000)} "-" "Mozilla/5.0 (X11; Linux x86_64)" ` +
          `${(r() * 0.2).toFixed(3)}`,
      };
    case 1:
      return {
        source: 'maintenance',
        cls: r() < 0.05 ? 2 : 1,
        body:
          `${iso} ${pick(['INFO', 'INFO', 'INFO', 'WARN', 'DEBUG'])} ` +
          `[${pick(['scheduler', 'http-nio-8080-exec-3', 'db-pool'])}] ` +
          `c.s.m.${pick(['WorkOrderService', 'SyncJob', 'EquipmentRepository'])} - ` +
          `${pick(['work order', 'job', 'batch'])} ${Math.floor(r() * 100000)} ` +
          `${pick(['completed', 'started', 'updated', 'queued'])} in ` +
          `${Math.floor(r() * 900)} ms`,
      };
    default:
      return {
        source: 'collector',
        cls: 1,
        body: JSON.stringify({
          ts: iso,
          level: 'info',
          sensor: `ME-${pick(['TEMP', 'PRES', 'RPM', 'VIB'])}-${Math.floor(r() * 40)}`,
          value: Math.round(r() * 10000) / 100,
          unit: pick(['C', 'bar', 'rpm', 'mm/s']),
          msg: 'reading',
        }),
      };
  }
}

// ---- 1. ingest rate
function ingest(): { outbox: number; raw: number; ratio: number } {
  const N = 200_000;
  const BATCH = 1000;
  const body = 'x'.repeat(200);
  const runs: { outbox: number; raw: number }[] = [];
  for (let run = 0; run < 5; run++) {
    const rawDb = new Database(join(dir, `raw-${run}.db`));
    rawDb.pragma('journal_mode = WAL');
    rawDb.pragma('synchronous = FULL');
    rawDb.exec(
      'CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, cls INTEGER, kind TEXT, ' +
        'source TEXT, body TEXT, ts INTEGER, boot_id TEXT, bytes INTEGER)',
    );
    const ins = rawDb.prepare(
      'INSERT INTO t (cls, kind, source, body, ts, boot_id, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const tx = rawDb.transaction((n: number) => {
      for (let i = 0; i < n; i++) ins.run(1, 'log', 'web', body, Date.now(), 'boot', 248);
    });
    let t0 = performance.now();
    for (let i = 0; i < N; i += BATCH) tx(BATCH);
    const raw = N / ((performance.now() - t0) / 1000);
    rawDb.close();

    const o = openOutbox({
      path: join(dir, `outbox-${run}.db`),
      bootId: 'boot',
      capBytes: 10 * 1024 ** 3,
      freeDiskFloorBytes: 0,
    });
    const recs: NewRecord[] = Array.from({ length: BATCH }, () => ({
      kind: 'log',
      cls: CLASS.info,
      source: 'web',
      body,
    }));
    t0 = performance.now();
    for (let i = 0; i < N; i += BATCH) o.append(recs);
    const outbox = N / ((performance.now() - t0) / 1000);
    o.close();
    runs.push({ outbox, raw });
  }
  return {
    outbox: median(runs.map((x) => x.outbox)),
    raw: median(runs.map((x) => x.raw)),
    ratio: median(runs.map((x) => x.outbox / x.raw)),
  };
}

// ---- 2. bytes per record
function bytesPerRecord(): {
  records: number;
  rawBytesPerRecord: number;
  wireBytesPerRecord: number;
  gzipBytesPerRecord: number;
} {
  const N = 5000;
  const sizes: { wire: number; gz: number; raw: number }[] = [];
  for (let run = 0; run < 3; run++) {
    const recs = Array.from({ length: N }, (_, i) => {
      const l = realisticLine(i);
      return {
        seq: 1000 + i,
        ts: t,
        cls: l.cls,
        kind: 'log' as const,
        source: l.source,
        body: l.body,
        bootId: 'e3b0c442-98fc-4c14-9afb-f4c8996fb924',
      };
    });
    const json = Buffer.from(JSON.stringify(encodeBatch('0123456789abcdef', recs, {}, 0)));
    const { body } = compressBatch(json, N);
    const gz = compressBatch(json, 1).body;
    sizes.push({
      wire: body.byteLength / N,
      gz: gz.byteLength / N,
      raw: recs.reduce((a, x) => a + x.body.length, 0) / N,
    });
  }
  return {
    records: N,
    rawBytesPerRecord: median(sizes.map((s) => s.raw)),
    wireBytesPerRecord: median(sizes.map((s) => s.wire)),
    gzipBytesPerRecord: median(sizes.map((s) => s.gz)),
  };
}

// ---- 3. backlog drain through a slow, far link
async function drain(): Promise<{
  seconds: number;
  wireBytes: number;
  linkBytes: number;
  capacityBytes: number;
  utilisation: number;
  records: number;
}> {
  const RATE = 256_000 / 8;
  const WINDOW_S = 60;
  const { app, deps } = await buildHub({ dataDir: join(dir, 'hub') });
  const keys = makeKeys();
  const now = Date.now();
  await addRoot(deps.store, signedRoot(rootPayloadFor(1, keys), keys.root), now);
  const tok = newEnrolmentToken('online', 60_000, { version: 1, bytes: (await deps.store.roots.get(1))! }, now);
  const vessel = await deps.store.vessels.create({ name: 'ship', groups: [], token: tok.stored }, now);
  const key = generateKey().key;
  const claim = { tokenHash: tok.stored.tokenHash, publicKey: key.publicRaw.toString('base64'), address: '127.0.0.1' };
  await deps.store.enrolment.claim(claim, now);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const hubPort = (app.server.address() as { port: number }).port;
  const link = new LinkSim({ host: '127.0.0.1', port: hubPort }, { latencyMs: 350, bytesPerSecond: RATE });
  const linkPort = await link.start();

  // A week-long backlog at 50 records/s is 30 million records; draining it at this rate takes days, so
  // measure a 60 s window of the drain of a backlog larger than the window can carry.
  const o = openOutbox({
    path: join(dir, 'drain.db'),
    bootId: 'boot',
    capBytes: 10 * 1024 ** 3,
    freeDiskFloorBytes: 0,
  });
  const total = 150_000;
  for (let i = 0; i < total; i += 5000) {
    o.append(
      Array.from({ length: 5000 }, (_, j) => {
        const l = realisticLine(i + j);
        return { kind: 'log' as const, cls: l.cls, source: l.source, body: l.body };
      }),
    );
  }
  const client = new HubClient(`http://127.0.0.1:${linkPort}`, vessel.id, key);
  const stats: ShipStats = { batches: 0, records: 0, wireBytes: 0 };
  const ac = new AbortController();
  const t0 = Date.now();
  const loop = shipLoop({
    client: () => client,
    outbox: o,
    vesselName: 'ship',
    log: createLogger('bench', 'silent'),
    signal: ac.signal,
    maxBytesPerSecond: 0,
    maxBackoffMs: 300_000,
    stats,
  });
  await new Promise((res) => setTimeout(res, WINDOW_S * 1000));
  const seconds = (Date.now() - t0) / 1000;
  ac.abort();
  await loop;
  await link.close();
  await app.close();
  o.close();
  const capacityBytes = RATE * seconds;
  return {
    seconds,
    wireBytes: stats.wireBytes,
    linkBytes: link.stats.up,
    capacityBytes,
    utilisation: link.stats.up / capacityBytes,
    records: stats.records,
  };
}

const result = { machine: machine(), ingest: ingest(), bytes: bytesPerRecord(), drain: await drain() };
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result, null, 2));
process.exit(0);
