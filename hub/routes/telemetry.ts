import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { vesselInScope } from '../auth.js';
import { vesselNameSchema } from '../store/vessel-store.js';
import { createRateLimiter } from '../rate-limit.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { decodeBatch, telemetryBatchSchema } from '../../shared/protocol/telemetry-wire.js';
import { TenderError } from '../../shared/errors.js';
import { parseBody, RequestValidationError } from './validate.js';

export class TelemetryIngestError extends TenderError {}

// A compressed batch from a vessel; a backlog batch of 5,000 records is a few hundred KB.
export const TELEMETRY_BODY_LIMIT = 16 * 1024 * 1024;
// Decompressed bytes allowed per batch: a gzip or brotli bomb stops here.
export const TELEMETRY_MAX_DECOMPRESSED = 64 * 1024 * 1024;
// Batches per vessel per minute: a draining backlog sends a few per minute; a flood is refused with 429.
export const TELEMETRY_BATCHES_PER_MINUTE = 120;

function decompress(body: Buffer, encoding: string | undefined): Buffer {
  try {
    if (!encoding || encoding === 'identity') {
      if (body.byteLength > TELEMETRY_MAX_DECOMPRESSED) throw new RangeError('too large');
      return body;
    }
    if (encoding === 'gzip') return gunzipSync(body, { maxOutputLength: TELEMETRY_MAX_DECOMPRESSED });
    if (encoding === 'br') return brotliDecompressSync(body, { maxOutputLength: TELEMETRY_MAX_DECOMPRESSED });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new TelemetryIngestError(
        `batch inflates past the ${TELEMETRY_MAX_DECOMPRESSED}-byte limit`,
        'too_large',
        1,
        413,
      );
    }
    throw new RequestValidationError(`body is not valid ${encoding}: ${(err as Error).message}`);
  }
  throw new TelemetryIngestError(
    `content-encoding ${encoding} is not supported (gzip, br)`,
    'unsupported_media_type',
    1,
    415,
  );
}

const logsQuery = z.strictObject({
  service: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)
    .optional(),
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  grep: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(200),
});

export function telemetryRoutes(deps: HubDeps): FastifyPluginAsync {
  const limiter = createRateLimiter(TELEMETRY_BATCHES_PER_MINUTE);
  const nameParams = z.strictObject({ name: vesselNameSchema });
  return async (app) => {
    app.post(
      '/api/v1/vessels/:name/telemetry',
      { config: { auth: { kind: 'vessel' } }, bodyLimit: TELEMETRY_BODY_LIMIT },
      async (req, reply) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const wait = limiter.take(v.id, deps.now());
        if (wait > 0)
          return reply
            .code(429)
            .header('retry-after', String(wait))
            .send({ error: 'rate_limited', message: `telemetry rate limit; retry in ${wait}s` });
        if (!req.rawBody) throw new RequestValidationError('body: a telemetry batch is required');
        const json = decompress(req.rawBody, req.headers['content-encoding']);
        const batch = parseBody(
          telemetryBatchSchema,
          parseStrictJson(json, { maxBytes: TELEMETRY_MAX_DECOMPRESSED, maxDepth: 8 }),
        );
        let records;
        try {
          records = decodeBatch(batch);
        } catch (err) {
          throw new RequestValidationError(`batch: ${(err as Error).message}`);
        }
        const r = deps.telemetry.ingest(v.id, batch, records, req.rawBody.byteLength, deps.now());
        deps.metrics.telemetryReceived(req.rawBody.byteLength, r.stored);
        return { stored: r.stored, duplicates: r.duplicates };
      },
    );

    app.get(
      '/api/v1/vessels/:name/logs',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const q = parseBody(logsQuery, req.query, 'query');
        return {
          vessel: name,
          logs: deps.telemetry.logs(v.id, {
            service: q.service,
            since: q.since ? Date.parse(q.since) : undefined,
            until: q.until ? Date.parse(q.until) : undefined,
            grep: q.grep,
            limit: q.limit,
          }),
        };
      },
    );

    app.get(
      '/api/v1/vessels/:name/events',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const q = parseBody(
          z.strictObject({ limit: z.coerce.number().int().min(1).max(10_000).default(100) }),
          req.query,
          'query',
        );
        return {
          vessel: name,
          events: deps.telemetry.events(v.id, q.limit),
          telemetry: deps.telemetry.vesselTelemetry(v.id) ?? null,
        };
      },
    );

    app.get(
      '/api/v1/vessels/:name/metrics',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const q = parseBody(
          z.strictObject({
            name: z.string().regex(/^[a-z_][a-z0-9_]{0,100}$/),
            since: z.iso.datetime().optional(),
            limit: z.coerce.number().int().min(1).max(100_000).default(1000),
          }),
          req.query,
          'query',
        );
        return {
          vessel: name,
          metric: q.name,
          points: deps.telemetry.metrics(v.id, q.name, q.since ? Date.parse(q.since) : 0, q.limit),
        };
      },
    );
  };
}
