import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { decodeBatch, telemetryBatchSchema } from '../../shared/protocol/telemetry-wire.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { describeZodError } from '../../shared/validation.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { perMinute } from './rate-limit.js';
import { InflateBudget, inflateBatch } from './telemetry-inflate.js';
import { boundRecords } from './telemetry-bounds.js';

export { TelemetryIngestError } from './telemetry-inflate.js';

// A compressed batch from a vessel; a backlog batch of 5,000 records is a few hundred KB.
export const TELEMETRY_BODY_LIMIT = 16 * 1024 * 1024;
// Batches per vessel per minute: a draining backlog sends a few per minute; a flood is refused with 429.
export const TELEMETRY_BATCHES_PER_MINUTE = 120;

export function telemetryRoutes(deps: HubDeps): FastifyPluginAsync {
  const lim = deps.limits;
  const budget = new InflateBudget(lim.TELEMETRY_INFLATED_BYTES_PER_MINUTE, deps.now);
  return async (app) => {
    // Per vessel (its credential, not its address): one vessel flooding cannot starve the others.
    const rateLimit = perMinute(TELEMETRY_BATCHES_PER_MINUTE, 'telemetry rate limit', {
      hook: 'preHandler',
      keyGenerator: (req) => (req.principal?.kind === 'vessel' ? req.principal.vessel.id : req.ip),
    });
    addRoute(
      app,
      ROUTES.postTelemetry,
      async (req) => {
        const v = vesselInScope(req, deps.vessels, req.params.name);
        if (!req.rawBody) throw new RequestValidationError('body: a telemetry batch is required');
        const max = lim.TELEMETRY_MAX_DECOMPRESSED;
        const json = await inflateBatch(req.rawBody, req.headers['content-encoding'], max, budget, v.id);
        const parsed = telemetryBatchSchema.safeParse(parseStrictJson(json, { maxBytes: max, maxDepth: 8 }));
        if (!parsed.success) throw new RequestValidationError(describeZodError(parsed.error, 'body'));
        const batch = parsed.data;
        let records;
        try {
          records = decodeBatch(batch);
        } catch (err) {
          throw new RequestValidationError(`batch: ${(err as Error).message}`);
        }
        const now = deps.now();
        const { bounded } = boundRecords(records, now, {
          earliestMs: lim.TELEMETRY_EARLIEST_MS,
          aheadMs: lim.TELEMETRY_AHEAD_MS,
        });
        if (bounded)
          req.log.warn(
            { vessel: v.name, records: bounded },
            'telemetry timestamps out of range; stored at receipt time',
          );
        const r = deps.telemetry.ingest(v.id, batch, records, req.rawBody.byteLength, now);
        deps.metrics.telemetryReceived(req.rawBody.byteLength, r.stored);
        return { stored: r.stored, duplicates: r.duplicates };
      },
      { bodyLimit: TELEMETRY_BODY_LIMIT, config: { rateLimit } },
    );

    addRoute(app, ROUTES.getLogs, async (req) => {
      const { name } = req.params;
      const v = vesselInScope(req, deps.vessels, name);
      const q = req.query;
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
    });

    addRoute(app, ROUTES.getEvents, async (req) => {
      const { name } = req.params;
      const v = vesselInScope(req, deps.vessels, name);
      return {
        vessel: name,
        events: deps.telemetry.events(v.id, req.query.limit),
        telemetry: deps.telemetry.vesselTelemetry(v.id) ?? null,
      };
    });

    addRoute(app, ROUTES.getMetrics, async (req) => {
      const { name } = req.params;
      const v = vesselInScope(req, deps.vessels, name);
      const q = req.query;
      return {
        vessel: name,
        metric: q.name,
        points: deps.telemetry.metrics(v.id, q.name, q.since ? Date.parse(q.since) : 0, q.limit),
      };
    });
  };
}
