import { Cron } from 'croner';

/**
 * When a policy's next backup is due, as a pure function of its cron expression (UTC), the newest slot
 * already claimed, and the vessel's clock now. A server that was off over several slots runs once, not
 * once per slot; a clock set back never re-runs a slot already claimed; a slot claimed under a clock that
 * ran far ahead (and was then corrected) does not hold the schedule back until that future date.
 */

// Counting the slots missed while the server was off stops here: the number only goes into an event.
const MAX_COUNTED_MISSED = 1000;
// A claimed slot further ahead of the clock than this was claimed under a wrong clock: re-anchor.
export const FUTURE_SLOT_TOLERANCE_MS = 36 * 3_600_000;

export interface TickPlan {
  /** The slot to run now, if any. */
  run?: number;
  /** Slots passed over between the last claimed one and the one run now (the server was off). */
  missed: number;
  /** The claimed slot to write instead, when the clock went back far past it; nothing runs. */
  reanchor?: number;
}

function cronOf(expr: string): Cron {
  return new Cron(expr, { timezone: 'UTC', mode: '5-part', paused: true });
}

/** The newest slot at or before `now`, or null when the expression has none before it. */
export function latestSlot(expr: string, now: number): number | null {
  const c = cronOf(expr);
  // previousRuns looks strictly before its reference; a slot exactly at `now` is due now.
  const prev = c.previousRuns(1, new Date(now + 1))[0];
  return prev ? prev.getTime() : null;
}

export function nextSlot(expr: string, after: number): number | null {
  return cronOf(expr).nextRun(new Date(after))?.getTime() ?? null;
}

export function planTick(expr: string, lastSlot: number | null, now: number): TickPlan {
  const latest = latestSlot(expr, now);
  if (latest === null) return { missed: 0 };
  if (lastSlot === null) return { run: latest, missed: 0 };
  if (lastSlot > now + FUTURE_SLOT_TOLERANCE_MS) return { missed: 0, reanchor: latest };
  if (latest <= lastSlot) return { missed: 0 };
  let missed = 0;
  const c = cronOf(expr);
  for (let t = c.nextRun(new Date(lastSlot)); t && t.getTime() < latest && missed < MAX_COUNTED_MISSED;) {
    missed++;
    t = c.nextRun(t);
  }
  return { run: latest, missed };
}
