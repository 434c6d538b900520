import { loadavg, freemem, totalmem } from 'node:os';
import { statfsSync } from 'node:fs';
import type { Logger } from 'pino';
import { errorMessage } from '../../shared/errors.js';
import { tsNanos, type DockerEngine } from '../../shared/docker.js';
import { sleep } from '../backoff.js';
import { LABELS } from '../release/runtime.js';
import { CLASS, type NewRecord, type Outbox } from './outbox.js';

// Lines are written to the outbox in groups: one transaction per line would cost 4x-40x more.
const FLUSH_EVERY_MS = 250;
const FLUSH_AT_LINES = 2_000;
// New containers (a swap) are noticed within this time.
const DISCOVER_EVERY_MS = 2_000;

const STATS_OFF_RECHECK_MS = 60_000;

/**
 * Collect what happens on board into the outbox: every managed container's stdout and stderr (with a
 * cursor committed in the same transaction as the lines, so a restart neither loses nor repeats one),
 * Docker events for those containers, and container and host stats.
 */
export function startCollector(opts: {
  vessel: string;
  docker: DockerEngine;
  outbox: Outbox;
  log: Logger;
  signal: AbortSignal;
  /** Container and host stats this often, read before each batch (the hub's setting may change it); 0: off. */
  statsIntervalMs: number | (() => number);
  dataDir: string;
}) {
  const followers = new Map<string, Promise<void>>();

  async function follow(id: string, service: string): Promise<void> {
    const cursor = opts.outbox.cursor(id);
    let lastTs = cursor?.ts;
    let atLast = cursor?.n ?? 0;
    const skipUntil = lastTs ? tsNanos(lastTs) : -1n;
    let toSkipAtLast = atLast;
    let resuming = skipUntil >= 0n;
    let pending: NewRecord[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      opts.outbox.append(pending, { container: id, ts: lastTs!, n: atLast });
      pending = [];
    };
    const timer = setInterval(flush, FLUSH_EVERY_MS);
    try {
      await opts.docker.followLogs(id, lastTs, opts.signal, (stream, ts, line) => {
        const t = tsNanos(ts);
        // Resuming: Docker's `since` is inclusive, so skip what the cursor says we already have. Only
        // while replaying: once past the cursor, a clock set back must not make new lines look old.
        if (resuming) {
          if (t < skipUntil) return;
          if (t === skipUntil && toSkipAtLast > 0) {
            toSkipAtLast--;
            return;
          }
          resuming = false;
        }
        if (ts === lastTs) atLast++;
        else {
          lastTs = ts;
          atLast = 1;
        }
        pending.push({
          kind: 'log',
          cls: stream === 'stderr' ? CLASS.warn : CLASS.info,
          source: service,
          body: line,
          ts: Number(t / 1_000_000n),
        });
        if (pending.length >= FLUSH_AT_LINES) flush();
      });
    } finally {
      clearInterval(timer);
      flush();
    }
  }

  async function discoverLoop(): Promise<void> {
    while (!opts.signal.aborted) {
      try {
        for (const c of await opts.docker.listContainers({ [LABELS.managed]: '1', [LABELS.vessel]: opts.vessel })) {
          if (!c.running || followers.has(c.id)) continue;
          const service = c.labels[LABELS.service] ?? c.name;
          const p = follow(c.id, service)
            .catch((err) => opts.log.warn({ container: c.name, reason: errorMessage(err) }, 'log collection stopped'))
            .finally(() => followers.delete(c.id));
          followers.set(c.id, p);
        }
      } catch (err) {
        opts.log.warn({ reason: errorMessage(err) }, 'cannot list containers for log collection');
      }
      await sleep(DISCOVER_EVERY_MS, opts.signal);
    }
  }

  async function eventsLoop(): Promise<void> {
    while (!opts.signal.aborted) {
      const since = opts.outbox.cursor('docker-events');
      try {
        await opts.docker.followEvents(
          since ? Math.floor(Number(since.ts) / 1000) : Math.floor(Date.now() / 1000),
          opts.signal,
          (e) => {
            if (e.labels[LABELS.vessel] !== opts.vessel) return;
            const last = Number(opts.outbox.cursor('docker-events')?.ts ?? 0);
            if (e.time <= last) return;
            opts.outbox.append(
              [
                {
                  kind: 'event',
                  cls: CLASS.event,
                  source: `docker.${e.action.split(':')[0]}`,
                  body: JSON.stringify({
                    service: e.labels[LABELS.service],
                    release: e.labels[LABELS.release],
                    action: e.action,
                    exitCode: e.exitCode,
                  }),
                  ts: e.time,
                },
              ],
              { container: 'docker-events', ts: String(e.time), n: 0 },
            );
          },
        );
      } catch (err) {
        opts.log.warn({ reason: errorMessage(err) }, 'docker events stream failed');
      }
      await sleep(2_000, opts.signal);
    }
  }

  const statsEvery = () => (typeof opts.statsIntervalMs === 'function' ? opts.statsIntervalMs() : opts.statsIntervalMs);
  async function statsLoop(): Promise<void> {
    while (!opts.signal.aborted) {
      if (statsEvery() <= 0) {
        // Turned off (a metered link's policy): look again in a minute, send nothing.
        await sleep(STATS_OFF_RECHECK_MS, opts.signal);
        continue;
      }
      const records: NewRecord[] = [];
      const metric = (name: string, value: number, labels: Record<string, string> = {}) =>
        records.push({
          kind: 'metric',
          cls: CLASS.metric,
          source: name,
          body: JSON.stringify({ v: Math.round(value * 1000) / 1000, l: labels }),
        });
      try {
        for (const c of await opts.docker.listContainers({ [LABELS.managed]: '1', [LABELS.vessel]: opts.vessel })) {
          if (!c.running) continue;
          const s = await opts.docker.containerStats(c.id);
          if (!s) continue;
          const labels = { service: c.labels[LABELS.service] ?? c.name, release: c.labels[LABELS.release] ?? '' };
          metric('container_cpu_percent', s.cpuPercent, labels);
          metric('container_memory_bytes', s.memoryBytes, labels);
        }
      } catch (err) {
        opts.log.debug({ reason: errorMessage(err) }, 'container stats unavailable');
      }
      metric('host_load1', loadavg()[0] ?? 0);
      metric('host_memory_free_bytes', freemem());
      metric('host_memory_total_bytes', totalmem());
      try {
        const fs = statfsSync(opts.dataDir);
        metric('host_disk_free_bytes', fs.bavail * fs.bsize);
      } catch {
        /* data dir gone */
      }
      opts.outbox.append(records);
      await sleep(Math.max(1000, statsEvery()), opts.signal);
    }
  }

  return Promise.all([discoverLoop(), eventsLoop(), statsLoop()])
    .then(() => Promise.all(followers.values()))
    .then(() => undefined);
}
