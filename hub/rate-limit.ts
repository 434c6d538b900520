/**
 * A token bucket per key (address or vessel). State lives in the object, made by buildHub; old buckets
 * are swept so a scan from many addresses cannot grow memory without bound.
 */
export function createRateLimiter(perMinute: number, maxKeys = 100_000) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refillPerMs = perMinute / 60_000;
  return {
    /** 0 when allowed, else the seconds to wait. */
    take(key: string, now = Date.now()): number {
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) buckets.clear();
        b = { tokens: perMinute, at: now };
        buckets.set(key, b);
      }
      b.tokens = Math.min(perMinute, b.tokens + (now - b.at) * refillPerMs);
      b.at = now;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.ceil((1 - b.tokens) / refillPerMs / 1000);
    },
  };
}
