import { describe, expect, it } from 'vitest';
import { backoffDelayMs, pollDelayMs, sleep } from '../../agent/backoff.js';

describe('poll and backoff delays', () => {
  it('jitters the poll interval by at most 10 percent either way', () => {
    expect(pollDelayMs(60_000, () => 0)).toBe(54_000);
    expect(pollDelayMs(60_000, () => 1)).toBe(66_000);
  });

  it('doubles after each failure, with equal jitter, up to the cap', () => {
    const hi = (n: number) => backoffDelayMs(n, 5_000, 900_000, () => 1);
    const lo = (n: number) => backoffDelayMs(n, 5_000, 900_000, () => 0);
    expect([1, 2, 3, 4].map(hi)).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(lo(3)).toBe(10_000);
    expect(hi(20)).toBe(900_000);
    expect(hi(10_000)).toBe(900_000);
  });

  it('sleep ends at once when the signal aborts', async () => {
    const c = new AbortController();
    const t0 = Date.now();
    setTimeout(() => c.abort(), 20);
    await sleep(60_000, c.signal);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
