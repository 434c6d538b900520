import { describe, expect, it } from 'vitest';
import { FUTURE_SLOT_TOLERANCE_MS, latestSlot, planTick } from '../../agent/backup/schedule.js';

const t = (s: string) => Date.parse(s);
const DAILY = '0 3 * * *';

describe('backup schedule', () => {
  it('runs a slot once when its time comes, and not again on the next tick', () => {
    const last = t('2026-03-01T03:00:00Z');
    expect(planTick(DAILY, last, t('2026-03-02T02:59:59Z'))).toEqual({ missed: 0 });
    expect(planTick(DAILY, last, t('2026-03-02T03:00:00Z'))).toEqual({ run: t('2026-03-02T03:00:00Z'), missed: 0 });
    expect(planTick(DAILY, t('2026-03-02T03:00:00Z'), t('2026-03-02T03:00:30Z'))).toEqual({ missed: 0 });
  });

  it('runs once at start for a server that was off over several slots, counting what it missed', () => {
    const plan = planTick(DAILY, t('2026-03-01T03:00:00Z'), t('2026-03-05T10:00:00Z'));
    expect(plan).toEqual({ run: t('2026-03-05T03:00:00Z'), missed: 3 });
  });

  it('does not re-run a slot when the clock is set back', () => {
    const claimed = t('2026-03-02T03:00:00Z');
    // An hour back, then a day back: the slots before the claimed one are never due again.
    expect(planTick(DAILY, claimed, t('2026-03-02T02:10:00Z'))).toEqual({ missed: 0 });
    expect(planTick(DAILY, claimed, t('2026-03-01T03:00:10Z'))).toEqual({ missed: 0 });
    expect(planTick(DAILY, claimed, t('2026-03-02T03:00:10Z'))).toEqual({ missed: 0 });
  });

  it('re-anchors a slot claimed under a clock far ahead, so the schedule is not held until that date', () => {
    const claimedUnderWrongClock = t('2031-03-02T03:00:00Z');
    const now = t('2026-03-02T12:00:00Z');
    expect(planTick(DAILY, claimedUnderWrongClock, now)).toEqual({ missed: 0, reanchor: t('2026-03-02T03:00:00Z') });
    expect(planTick(DAILY, t('2026-03-02T03:00:00Z'), t('2026-03-03T03:00:00Z')).run).toBe(t('2026-03-03T03:00:00Z'));
    expect(planTick(DAILY, now + FUTURE_SLOT_TOLERANCE_MS - 1, now)).toEqual({ missed: 0 });
  });

  it('reads the expression in UTC, a slot exactly at now included', () => {
    expect(latestSlot('30 22 * * 1-5', t('2026-03-06T22:30:00Z'))).toBe(t('2026-03-06T22:30:00Z'));
    expect(latestSlot('30 22 * * 1-5', t('2026-03-08T12:00:00Z'))).toBe(t('2026-03-06T22:30:00Z'));
  });
});
