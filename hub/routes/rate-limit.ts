import type { FastifyRequest } from 'fastify';
import type { RateLimitOptions } from '@fastify/rate-limit';
import { TenderError } from '../../shared/errors.js';

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
