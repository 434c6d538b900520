import { request, Agent } from 'node:http';
import { cpus, totalmem } from 'node:os';
import type { ChunkStore } from '../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import { contentChunks, namedChunks } from '../shared/content/release-chunks.js';

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Closed-loop HTTP load: `concurrency` keep-alive clients, `total` requests; latencies in ms. */
export async function closedLoop(
  port: number,
  total: number,
  concurrency: number,
): Promise<{ latencies: number[]; seconds: number; failed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let failed = 0;
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < total) {
      next++;
      const s = process.hrtime.bigint();
      await new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) failed++;
            latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
            resolve();
          });
        });
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.end();
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { latencies, seconds: Number(process.hrtime.bigint() - t0) / 1e9, failed };
}

/** Every chunk a set of images is made of (configs, layer indexes, content), with its compressed size. */
export function imageChunks(images: ReleaseManifest['images'], cache: ChunkStore): Map<string, number> {
  const m = { images } as ReleaseManifest;
  const out = new Map<string, number>();
  for (const [d, s] of namedChunks(m)) out.set(d, s.comp);
  for (const d of contentChunks(m, cache).chunks.keys()) out.set(d, cache.size(d));
  return out;
}
