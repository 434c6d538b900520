/**
 * Idle bandwidth of one vessel (issue 12): every byte an idle vessel and the hub exchange, counted by a
 * TCP proxy between the agent's real sync (HubClient, syncOnce, the status report) and a real hub, HTTP
 * headers included (TCP/IP and TLS overhead not: about 40 bytes per segment and, over TLS 1.3 with a
 * resumed session, a few hundred bytes per new connection; keep-alive reuses one).
 * A day of simulated time per profile, counted after one warm-up poll (the first full desired state and
 * report): the schedule (polls, status heartbeats, host-metrics batches) runs on an injected clock, each
 * exchange is a real request. Monthly figure = day / 24 × 730.
 *
 * Profiles: defaults (poll 60 s, status heartbeat 15 min, host metrics every 60 s) is the baseline;
 * "quiet" (poll 15 min = 4 polls an hour, heartbeat 6 h, host metrics off), the same with a daily
 * heartbeat (a report still goes whenever anything it says changes), and "metered" (poll 30 min,
 * heartbeat 24 h, host metrics off), all settable per vessel or group from the hub.
 * Usage: npx tsx bench/idle-bytes.ts [runs=3]
 */
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { buildHub } from '../hub/app.js';
import { addRoot } from '../hub/roots.js';
import { newEnrolmentToken } from '../hub/enrolment.js';
import { HubClient } from '../agent/hub-client.js';
import { createHubFetch, newLinkMeter } from '../shared/tls/hub-fetch.js';
import { loadHubTls, loadTicketKeys } from '../hub/tls.js';
import { issueCert, makeCa } from '../test/helpers/tls.js';
import { LinkMeter } from '../agent/link-meter.js';
import { syncOnce } from '../agent/sync.js';
import { openStateStore } from '../agent/state-store.js';
import { vesselPaths } from '../agent/config.js';
import { compressBatch } from '../agent/telemetry/shipper.js';
import { CLASS } from '../agent/telemetry/outbox.js';
import { encodeBatch, type WireRecord } from '../shared/protocol/telemetry-wire.js';
import { generateKey } from '../shared/trust/keys.js';
import { createLogger } from '../shared/log.js';
import { verifyInitialRoot } from '../shared/trust/root.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../test/helpers/keys.js';
import { machine, median } from './lib.js';

const HOUR_S = 3600;
// A day of simulated time per profile (slow heartbeats come round), after one warm-up poll.
const SIM_S = 24 * HOUR_S;
const MONTH_HOURS = 730;
const METRIC_SAMPLES = 20;

interface Profile {
  name: string;
  pollS: number;
  heartbeatS: number;
  hostMetricsS: number;
  /**
   * Over TLS 1.3 as the agent speaks it (pinned CA, session tickets kept on disk), and the link dropping
   * between polls: every exchange opens a new connection and resumes the session. The proxy then counts
   * TLS records and handshakes; TCP/IP headers are still not counted.
   */
  tls?: boolean;
}
const PROFILES: Profile[] = [
  { name: 'defaults', pollS: 60, heartbeatS: 900, hostMetricsS: 60 },
  { name: 'quiet (4 polls an hour)', pollS: 900, heartbeatS: 6 * 3600, hostMetricsS: 0 },
  { name: 'quiet, daily heartbeat', pollS: 900, heartbeatS: 24 * 3600, hostMetricsS: 0 },
  { name: 'metered', pollS: 1800, heartbeatS: 24 * 3600, hostMetricsS: 0 },
  {
    name: 'quiet, daily heartbeat, TLS (resumed each poll)',
    pollS: 900,
    heartbeatS: 24 * 3600,
    hostMetricsS: 0,
    tls: true,
  },
  { name: 'metered, TLS (resumed each poll)', pollS: 1800, heartbeatS: 24 * 3600, hostMetricsS: 0, tls: true },
];

// IDLE_BYTES_DUMP=1 prints what crosses the proxy (to see where the bytes of a poll go).
const dump = (dir: string, d: Buffer) => {
  if (process.env.IDLE_BYTES_DUMP) process.stderr.write(`${dir} ${d.length} bytes\n${d.toString('latin1')}\n`);
};

/** A TCP proxy that counts bytes each way. */
async function countingProxy(
  target: number,
): Promise<{ port: number; up: () => number; down: () => number; server: Server }> {
  let up = 0;
  let down = 0;
  const server = createServer((c) => {
    const s = connect(target, '127.0.0.1');
    c.on('data', (d) => ((up += d.length), dump('>', d), s.write(d)));
    s.on('data', (d) => ((down += d.length), dump('<', d), c.write(d)));
    c.on('close', () => s.destroy());
    s.on('close', () => c.destroy());
    c.on('error', () => s.destroy());
    s.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, up: () => up, down: () => down, server };
}

/** The host-metrics batch the collector queues each interval (one container), as the shipper sends it. */
function hostMetricsBatch(seq: number, ts: number): { body: Buffer; encoding: 'gzip' | 'br'; records: number } {
  const names = [
    ['container_cpu_percent', 3.125],
    ['container_memory_bytes', 48_123_904],
    ['host_load1', 0.42],
    ['host_memory_free_bytes', 1_712_345_088],
    ['host_memory_total_bytes', 4_109_451_264],
    ['host_disk_free_bytes', 21_474_836_480],
  ] as const;
  const recs: WireRecord[] = names.map(([n, v], i) => ({
    seq: seq + i,
    ts,
    cls: CLASS.metric,
    kind: 'metric',
    source: n,
    body: JSON.stringify({ v, l: i < 2 ? { service: 'portal', release: '1.0.0' } : {} }),
    bootId: 'e3b0c442-98fc-4c14-9afb-f4c8996fb924',
  }));
  const json = Buffer.from(JSON.stringify(encodeBatch('0123456789abcdef', recs, {}, 0)));
  return { ...compressBatch(json, recs.length), records: recs.length };
}

async function runProfile(
  p: Profile,
  dir: string,
): Promise<{
  bytes: number;
  polls: number;
  reports: number;
  batches: number;
  fullHandshakes: number;
  resumedHandshakes: number;
}> {
  const hubDir = join(dir, `hub-${p.pollS}-${p.heartbeatS}${p.tls ? '-tls' : ''}`);
  mkdirSync(hubDir, { recursive: true });
  const ca = p.tls ? makeCa() : undefined;
  const cert = ca && issueCert(ca);
  const { app, deps } = await buildHub({
    dataDir: hubDir,
    ...(cert && {
      tls: {
        state: loadHubTls({ certFile: cert.chainFile, keyFile: cert.keyFile }),
        ticketKeys: loadTicketKeys(hubDir),
      },
    }),
  });
  const keys = makeKeys();
  const now = Date.now();
  const rootBytes = signedRoot(rootPayloadFor(1, keys), keys.root);
  await addRoot(deps.store, rootBytes, now);
  const tok = newEnrolmentToken('online', 60_000, { version: 1, bytes: rootBytes }, now);
  const vessel = await deps.store.vessels.create({ name: 'ship', groups: [], token: tok.stored }, now);
  const key = generateKey().key;
  await deps.store.enrolment.claim(
    { tokenHash: tok.stored.tokenHash, publicKey: key.publicRaw.toString('base64'), address: '127.0.0.1' },
    now,
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const proxy = await countingProxy((app.server.address() as { port: number }).port);
  // The agent's own transport (agent/hub-link.ts: node's http/https with only the headers it is given),
  // on plain HTTP here as with --insecure-http; TLS records and handshakes are counted in issue 18's bench.
  const vesselDir = join(dir, `vessel-${p.pollS}-${p.heartbeatS}${p.tls ? '-tls' : ''}`);
  mkdirSync(vesselDir, { recursive: true });
  const tlsMeter = newLinkMeter();
  const client = new HubClient(
    `${ca ? 'https' : 'http'}://127.0.0.1:${proxy.port}`,
    vessel.id,
    key,
    0,
    () => {},
    new LinkMeter(),
    ca
      ? // No idle socket is kept: polls are 15 or 30 minutes apart, beyond any keep-alive the link allows.
        createHubFetch({ ca: [ca.pem], sessionFile: join(vesselDir, 'tls-session'), keepAliveMs: 1, meter: tlsMeter })
      : createHubFetch({ allowHttp: true }),
  );
  const store = openStateStore(vesselPaths(vesselDir));
  const root = verifyInitialRoot(rootBytes);
  let simNow = now;
  const log = createLogger('bench', 'silent');
  // The heartbeat as the hub would set it: in the desired state's settings, the sync reads it from there.
  const settings = { pollSeconds: p.pollS, statusHeartbeatSeconds: p.heartbeatS, hostMetricsSeconds: p.hostMetricsS };
  let polls = 0;
  let reports = 0;
  let batches = 0;
  const sent = () => store.get('status.lastReport')?.at;
  let lastSent = sent();
  let nextMetrics = 0;
  let seq = 1;
  let base = 0;
  let sampled = 0;
  let sampledBytes = 0;
  let handshakes = { full: 0, resumed: 0 };
  try {
    for (let t = -p.pollS; t < SIM_S; t += p.pollS) {
      if (t === 0) {
        base = proxy.up() + proxy.down();
        polls = reports = batches = 0;
        handshakes = { full: tlsMeter.fullHandshakes, resumed: tlsMeter.resumedHandshakes };
      }
      simNow = now + t * 1000;
      // Host metrics due since the last poll go in one batch each (the shipper sends them as they come).
      while (p.hostMetricsS > 0 && t >= 0 && nextMetrics <= t) {
        if (sampled < METRIC_SAMPLES) {
          // The hub's per-minute batch limit is real time: the first batches are sent and counted, the
          // rest of the day's are counted at their measured mean (every batch is the same shape).
          const before = proxy.up() + proxy.down();
          const b = hostMetricsBatch(seq, simNow);
          seq += b.records;
          const res = await client.postTelemetry('ship', b.body, b.encoding, 30_000);
          if (res.status !== 200) throw new Error(`telemetry: ${res.status} ${res.body.toString()}`);
          sampledBytes += proxy.up() + proxy.down() - before;
          sampled++;
        }
        batches++;
        nextMetrics += p.hostMetricsS;
      }
      const desired = store.get('desired');
      if (desired) store.set('desired', { ...desired, settings });
      await syncOnce({
        client,
        store,
        vesselName: 'ship',
        rootPath: join(dir, 'root.json'),
        root,
        log,
        now: () => simNow,
      });
      // A changed desired state sends its report in the background; let it land before counting.
      await new Promise((r) => setTimeout(r, 20));
      polls++;
      if (sent() !== lastSent) reports++;
      lastSent = sent();
    }
  } finally {
    store.close();
    proxy.server.close();
    await app.close();
  }
  const extrapolated = sampled ? ((batches - sampled) * sampledBytes) / sampled : 0;
  const day = proxy.up() + proxy.down() - base + extrapolated;
  return {
    bytes: day / 24,
    polls: polls / 24,
    reports: reports / 24,
    batches: batches / 24,
    fullHandshakes: (tlsMeter.fullHandshakes - handshakes.full) / 24,
    resumedHandshakes: (tlsMeter.resumedHandshakes - handshakes.resumed) / 24,
  };
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'tender-bench-idle-'));
  try {
    const results = new Map<
      string,
      { bytes: number[]; polls: number; reports: number; batches: number; full: number; resumed: number }
    >();
    for (let run = 0; run < runs; run++)
      for (const p of PROFILES) {
        // IDLE_BYTES_ONLY=metered (a word of the name): that profile only, the others' rows left blank.
        if (process.env.IDLE_BYTES_ONLY && !p.name.includes(process.env.IDLE_BYTES_ONLY)) continue;
        const r = await runProfile(p, join(dir, `run${run}`));
        const e = results.get(p.name) ?? {
          bytes: [],
          polls: r.polls,
          reports: r.reports,
          batches: r.batches,
          full: r.fullHandshakes,
          resumed: r.resumedHandshakes,
        };
        e.bytes.push(r.bytes);
        results.set(p.name, e);
      }
    const base = median(results.get(PROFILES[0]!.name)?.bytes ?? [NaN]);
    console.log(`machine: ${machine()}; ${runs} runs, a simulated day each, per hour, median; month = 730 h`);
    console.log(
      '| profile | polls/h | status reports/h | metric batches/h | TLS handshakes/h (full, resumed) ' +
        '| bytes/h | MB/month | ratio to defaults |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const p of PROFILES) {
      const e = results.get(p.name);
      if (!e) continue;
      const m = median(e.bytes);
      const hs = p.tls ? `${e.full.toFixed(2)}, ${e.resumed.toFixed(2)}` : '-';
      const cells = [p.name, e.polls.toFixed(2), e.reports.toFixed(2), e.batches.toFixed(2), hs, m.toFixed(0)];
      cells.push(((m * MONTH_HOURS) / 1e6).toFixed(3), (m / base).toFixed(4));
      console.log(`| ${cells.join(' | ')} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
