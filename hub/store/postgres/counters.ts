import type { SharedCounterRecords } from '../hub-store.js';
import type { PgDb } from './pg.js';

// Windows that ended this long ago are deleted, now and then, by the hits themselves.
const KEEP_ENDED_MS = 10 * 60_000;
const PRUNE_EVERY = 500;

/**
 * Fixed-window counters in one row per key: an upsert counts the hit and starts a new window when the
 * last one has ended, atomically, whichever hub process the request reached.
 */
export function pgCounters(db: PgDb): SharedCounterRecords {
  let hits = 0;
  return {
    async hit(key, windowMs, now, amount = 1) {
      const row = await db.get<{ count: string; window_start: string }>(
        `INSERT INTO rate_counters (key, window_start, window_ms, count) VALUES (?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET
           count = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= EXCLUDED.window_start
                        THEN EXCLUDED.count ELSE rate_counters.count + EXCLUDED.count END,
           window_start = CASE WHEN rate_counters.window_start + rate_counters.window_ms <= EXCLUDED.window_start
                        THEN EXCLUDED.window_start ELSE rate_counters.window_start END,
           window_ms = EXCLUDED.window_ms
         RETURNING count, window_start`,
        [key, now, windowMs, amount],
      );
      if (++hits % PRUNE_EVERY === 0)
        await db.run('DELETE FROM rate_counters WHERE window_start + window_ms < ?', [now - KEEP_ENDED_MS]);
      return { count: Number(row!.count), resetAt: Number(row!.window_start) + windowMs };
    },
  };
}
