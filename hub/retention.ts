import type { Logger } from 'pino';
import type { HubStore } from './store/hub-store.js';

// Metrics are kept this long; logs and events until an operator prunes them (they are the record).
export const METRICS_RETENTION_MS = 30 * 24 * 3600 * 1000;
// How often retention runs (it used to run inside an ingest at most this often), and the first pass after
// start: not at once, so a hub that restarts does no bulk delete while vessels reconnect.
export const RETENTION_INTERVAL_MS = 3600_000;
export const RETENTION_FIRST_PASS_MS = 5 * 60_000;

/** One retention pass: metric points received before the retention horizon go. Returns what it deleted. */
export async function runRetention(store: HubStore, now: number): Promise<{ metrics: number }> {
  return { metrics: await store.telemetry.pruneMetrics(now - METRICS_RETENTION_MS) };
}

/**
 * Retention as a background task of the hub: a few minutes after start, then every interval. A failed pass
 * is logged and retried at the next tick; the timer never keeps the process alive. Returns the stop.
 */
export function startRetention(
  store: HubStore,
  now: () => number,
  log: Pick<Logger, 'info' | 'warn'>,
  intervalMs = RETENTION_INTERVAL_MS,
): () => Promise<void> {
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = runRetention(store, now())
      .then(
        (r) => {
          if (r.metrics) log.info({ metrics: r.metrics }, 'retention pruned telemetry');
        },
        (err: unknown) => log.warn({ err }, 'retention pass failed; retrying at the next interval'),
      )
      .finally(() => (running = undefined));
  };
  const first = setTimeout(tick, Math.min(RETENTION_FIRST_PASS_MS, intervalMs));
  const timer = setInterval(tick, intervalMs);
  first.unref();
  timer.unref();
  return async () => {
    clearTimeout(first);
    clearInterval(timer);
    await running;
  };
}
