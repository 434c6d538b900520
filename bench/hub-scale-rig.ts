/**
 * The hubs bench/hub-scale.ts loads: one `tender hub serve` on the embedded SQLite store, or (`--pg`) two
 * on one PostgreSQL database (Debian's, a private cluster) and one S3 chunk store (s3rver, an emulator, in
 * this process) behind Debian's haproxy, started by the test helpers that the scale-out test uses. What it
 * starts is registered with the helpers' cleanup (file scope: outside vitest, runDeferredCleanup() ends it).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openHubStore, type HubStoreLocation } from '../hub/store/open-store.js';
import type { HubStore } from '../hub/store/hub-store.js';
import { MAX_CONNECTIONS_PER_ADDRESS } from '../hub/limits.js';
import { cleanup } from '../test/helpers/cleanup.js';
import { startHaproxy } from '../test/helpers/haproxy.js';
import { startPgCluster } from '../test/helpers/postgres.js';
import { startS3 } from '../test/helpers/s3.js';
import { tempDir } from '../test/helpers/tmp.js';

export type RigMode = 'sqlite' | 'pg';

// A hub on 10,000 vessels opens its store and migrates in a few seconds; a loaded 2-core machine, longer.
const HUB_START_TIMEOUT_MS = 60_000;
// initdb and the first connection of a private cluster on a loaded 2-core machine.
const PG_START_TIMEOUT_MS = 120_000;
// Every keep-alive socket of the load generator (256 addresses, a few sockets each) plus headroom.
const HAPROXY_MAXCONN = 4096;
// haproxy's connections to one hub all come from 127.0.0.1: busy plus idle stay under the hub's
// per-address cap (health checks take a few more).
const HAPROXY_CONNS_PER_HUB = Math.floor(MAX_CONNECTIONS_PER_ADDRESS / 2) - 2;

export interface HubProcess {
  /** The process's own address (its /metrics). */
  url: string;
  pid: number;
}

export interface HubRig {
  mode: RigMode;
  /** Opens the hubs' store for set-up before they start; the caller closes it. */
  openStore(): Promise<HubStore>;
  /** Starts the hub process(es) on that store; `url` is where vessels go (the hub, or haproxy). */
  serve(): Promise<{ url: string; hubs: HubProcess[]; others: { name: string; pid: number }[] }>;
}

export async function startRig(mode: RigMode): Promise<HubRig> {
  const dir = tempDir('tender-bench-scale-');
  if (mode === 'sqlite') {
    const loc: HubStoreLocation = { dataDir: join(dir, 'hub') };
    return {
      mode,
      openStore: () => openHubStore(loc),
      serve: async () => {
        const hub = await startHub(['--data', loc.dataDir!], {});
        return { url: hub.url, hubs: [hub], others: [] };
      },
    };
  }
  const s3 = await startS3();
  cleanup(() => s3.stop());
  const cluster = await startPgCluster({ timeoutMs: PG_START_TIMEOUT_MS });
  cleanup(() => cluster.stop());
  const loc: HubStoreLocation = {
    db: await cluster.createDatabase(),
    chunks: `s3://${s3.bucket}/bench-${process.pid}`,
  };
  return {
    mode,
    openStore: () => openHubStore(loc, { env: s3.env }),
    serve: async () => {
      const env = { ...s3.env, TENDER_HUB_DB: loc.db!, TENDER_HUB_CHUNKS: loc.chunks! };
      const hubs = await Promise.all([startHub([], env), startHub([], env)]);
      const lb = await startHaproxy(
        hubs.map((h, i) => ({ name: `hub${i}`, port: Number(new URL(h.url).port) })),
        { maxconn: HAPROXY_MAXCONN, serverConns: HAPROXY_CONNS_PER_HUB },
      );
      const others = [
        { name: 'haproxy', pid: lb.pid },
        { name: 'postgres', pid: cluster.pid },
      ];
      return { url: lb.url, hubs, others };
    },
  };
}

/** `tender hub serve` on a free port of 127.0.0.1, killed by the deferred cleanup. */
async function startHub(args: string[], env: Record<string, string>): Promise<HubProcess> {
  const proc = spawn(process.execPath, ['bin/tender.js', 'hub', 'serve', ...args, '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env, TENDER_LOG_LEVEL: 'info' },
  });
  cleanup(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = /"url":"(http:\/\/[^"]+)"/.exec(buf);
      if (!m) return;
      // Its request log from here on is read and dropped: kept, it would grow in the generator.
      proc.stdout!.off('data', onData);
      proc.stdout!.resume();
      resolve(m[1]!);
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (c) => reject(new Error(`hub exited ${c}: ${buf.slice(-500)}`)));
    setTimeout(
      () => reject(new Error(`hub did not start in ${HUB_START_TIMEOUT_MS} ms: ${buf.slice(-500)}`)),
      HUB_START_TIMEOUT_MS,
    );
  });
  return { url, pid: proc.pid! };
}

/** CPU seconds of a process and its descendants (alive, and the exited ones it waited for), from /proc. */
export function treeCpuS(pid: number): number {
  const stats = new Map<number, string[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      stats.set(Number(e), readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]!.split(' '));
    } catch {
      // ended while listed
    }
  }
  let ticks = 0;
  const queue = [pid];
  while (queue.length) {
    const p = queue.pop()!;
    const f = stats.get(p);
    if (!f) continue;
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    for (const [child, cf] of stats) if (Number(cf[1]) === p) queue.push(child);
  }
  return ticks / 100;
}

export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!) / 1024;
}
