/**
 * Delays for a link that drops: a steady poll with ±10 % jitter so a fleet does not poll in lockstep, and
 * after failures an exponential backoff with "equal jitter", capped, so a returning link is noticed soon
 * and a thousand ships coming back from a blackout do not hit the hub in the same second.
 */
export function pollDelayMs(intervalMs: number, random: () => number = Math.random): number {
  return Math.round(intervalMs * (0.9 + 0.2 * random()));
}

export function backoffDelayMs(
  failures: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/** Sleep that ends early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A bell one loop rings for the others: the sync loop rings it when the hub answers again after failures,
 * so a loop backing off from the same outage (telemetry) tries again at once instead of sleeping out a
 * delay grown while the link was down.
 */
export class Wakeup {
  private waiters = new Set<() => void>();
  private rings = 0;

  /** Times rung so far: a loop compares before and after its sleep to know whether the bell woke it. */
  get count(): number {
    return this.rings;
  }

  ring(): void {
    this.rings++;
    for (const w of [...this.waiters]) w();
  }

  /** Sleep MS, ending early (without throwing) when the signal aborts or the bell rings. */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    const bell = new AbortController();
    const wake = () => bell.abort();
    this.waiters.add(wake);
    return sleep(ms, AbortSignal.any([signal, bell.signal])).finally(() => this.waiters.delete(wake));
  }
}
