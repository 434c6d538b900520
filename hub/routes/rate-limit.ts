import type { FastifyRequest } from 'fastify';
import type { RateLimitOptions } from '@fastify/rate-limit';
import { TenderError } from '../../shared/errors.js';
import type { SharedCounterRecords } from '../store/hub-store.js';

export class RateLimitedError extends TenderError {
  constructor(message: string) {
    super(message, 'rate_limited', 1, 429);
  }
}

/**
 * A per-route limit of @fastify/rate-limit: `max` requests per minute per key; past it a 429 with
 * Retry-After and `{ error: 'rate_limited', message }` saying what was limited.
 */
export function perMinute(
  max: number,
  what: string,
  extra: Pick<RateLimitOptions, 'keyGenerator' | 'hook' | 'onExceeded'> = {},
): RateLimitOptions {
  return {
    max,
    timeWindow: 60_000,
    ...extra,
    errorResponseBuilder: (_req: FastifyRequest, ctx) =>
      new RateLimitedError(`${what}; retry in ${Math.max(1, Math.ceil(ctx.ttl / 1000))}s`),
  };
}

type Counted = (err: Error | null, res?: { current: number; ttl: number }) => void;

/**
 * A store for @fastify/rate-limit whose counts live in the hub store's shared counters (PostgreSQL): a
 * limit per address or per vessel then holds across every hub behind the balancer, not per process.
 * Keys are per route, as the plugin's own store keeps them.
 */
export function sharedRateStore(counters: SharedCounterRecords, now: () => number = Date.now) {
  return class SharedRateStore {
    private readonly prefix: string;
    // What the plugin hands a child: the route's merged options, with routeInfo (method and url).
    constructor(opts: unknown = {}) {
      const r = (opts as { routeInfo?: { method?: string | string[]; url?: string } }).routeInfo;
      this.prefix = r?.url ? `${[r.method].flat().join(',')} ${r.url} ` : '';
    }
    incr(key: string, cb: Counted, timeWindow: number): void {
      const at = now();
      counters.hit(`rate:${this.prefix}${key}`, timeWindow, at).then(
        (r) => cb(null, { current: r.count, ttl: Math.max(0, r.resetAt - at) }),
        (err: Error) => cb(err),
      );
    }
    child(routeOptions: unknown): SharedRateStore {
      return new SharedRateStore(routeOptions);
    }
  };
}
