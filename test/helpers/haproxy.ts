import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cleanup } from './cleanup.js';
import { tempDir } from './tmp.js';

export interface HaproxyOptions {
  /** Client connections haproxy holds at once (its `global maxconn`); 256 unless told. */
  maxconn?: number;
  /**
   * Connections to each hub, busy and idle (`maxconn` and `pool-max-conn` of each server line): all come
   * from 127.0.0.1, so keep the two below the hub's per-address cap; more requests wait in haproxy's queue
   * (up to 30 s). Unbounded unless told.
   */
  serverConns?: number;
}

export interface Haproxy {
  url: string;
  pid: number;
  /** Ends haproxy (also done when the test ends, or by runDeferredCleanup() outside a test). */
  stop(): void;
}

/**
 * Debian's haproxy in front of hub processes, as an operator would run it: round robin, a health check on
 * /health every 300 ms (a dead hub is out after one failed check), a request whose connection fails
 * retried on the other server, and the server that answered named in X-Tender-Hub. Stopped when the test
 * ends.
 */
export async function startHaproxy(
  backends: { name: string; port: number }[],
  opts: HaproxyOptions = {},
): Promise<Haproxy> {
  const perServer = opts.serverConns ? ` maxconn ${opts.serverConns} pool-max-conn ${opts.serverConns}` : '';
  const port = await freePort();
  const dir = tempDir('tender-haproxy-');
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      `  maxconn ${opts.maxconn ?? 256}`,
      'defaults',
      '  mode http',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  retries 3',
      '  option redispatch',
      ...(opts.serverConns ? ['  timeout queue 30s'] : []),
      'frontend hubs',
      `  bind 127.0.0.1:${port}`,
      '  default_backend hubs',
      'backend hubs',
      '  balance roundrobin',
      '  option httpchk GET /health',
      '  http-response set-header X-Tender-Hub %s',
      ...backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port} check inter 300 fall 1 rise 1${perServer}`),
      '',
    ].join('\n'),
  );
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const stop = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  cleanup(stop);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${log}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return { url, pid: proc.pid!, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`haproxy did not answer in time: ${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}
