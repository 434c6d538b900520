import { request } from 'node:http';

/**
 * Steady load through a port: one new TCP connection per request (the hard case for a swap), at a fixed
 * rate, counting what failed and which bodies came back. Bounded: it stops when told or at maxMs.
 */
export function startLoad(port: number, perSecond: number, maxMs = 120_000) {
  const stats = { ok: 0, failed: 0, bodies: new Map<string, number>(), errors: [] as string[] };
  let stopped = false;
  const inflight = new Set<Promise<void>>();
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) {
            stats.ok++;
            const b = body.trim();
            stats.bodies.set(b, (stats.bodies.get(b) ?? 0) + 1);
          } else {
            stats.failed++;
            stats.errors.push(`HTTP ${res.statusCode}`);
          }
          resolve();
        });
        res.on('error', (e) => {
          stats.failed++;
          stats.errors.push(e.message);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        stats.failed++;
        stats.errors.push(e.message);
        resolve();
      });
      req.end();
    });
  const started = Date.now();
  const timer = setInterval(() => {
    if (stopped || Date.now() - started > maxMs) return;
    const p = one();
    inflight.add(p);
    void p.then(() => inflight.delete(p));
  }, 1000 / perSecond);
  return {
    stats,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inflight]);
      return stats;
    },
  };
}
