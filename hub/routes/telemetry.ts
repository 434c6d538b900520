import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { noteBackupEvents } from '../backup-status.js';
import { vesselInScope } from '../auth.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { decodeBatch, telemetryBatchSchema } from '../../shared/protocol/telemetry-wire.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { describeZodError } from '../../shared/validation.js';
import { telemetryRecordsFromWire } from '../store/telemetry-records.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { perMinute } from './rate-limit.js';
import { inflateBatch, memoryInflateBudget, sharedInflateBudget } from './telemetry-inflate.js';
import { boundRecords } from './telemetry-bounds.js';

export { TelemetryIngestError } from './telemetry-inflate.js';

// A compressed batch from a vessel; a backlog batch of 5,000 records is a few hundred KB.
export const TELEMETRY_BODY_LIMIT = 16 * 1024 * 1024;
// Batches per vessel per minute: a draining backlog sends a few per minute; a flood is refused with 429.
export const TELEMETRY_BATCHES_PER_MINUTE = 120;

const iso = (ms: number) => new Date(ms).toISOString();

export function telemetryRoutes(deps: HubDeps): FastifyPluginAsync {
  const lim = deps.limits;
  const perMinuteBytes = lim.TELEMETRY_INFLATED_BYTES_PER_MINUTE;
  const budget = deps.store.counters
    ? sharedInflateBudget(deps.store.counters, perMinuteBytes, deps.now)
    : memoryInflateBudget(perMinuteBytes, deps.now);
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
        const v = await vesselInScope(req, deps.store, req.params.name);
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
        const stored = telemetryRecordsFromWire(records);
        const r = await deps.store.telemetry.ingest(
          v.id,
          { epoch: batch.epoch, backlog: batch.backlog, drops: batch.drops },
          stored,
          req.rawBody.byteLength,
          now,
        );
        // Backup results (and missed or failed schedules, alarms ashore) for the page and `backup list`.
        await noteBackupEvents(
          deps.store,
          v.id,
          stored.flatMap((x) => (x.kind === 'event' ? [x] : [])),
        );
        // Rollout outcomes, in the order the vessel queued them; the rollouts they touch advance at once. A
        // failure here answers 500, so the vessel sends the batch again (stored once, outcomes applied once).
        await deps.rollouts.ingest(v.id, batch.epoch, stored);
        deps.metrics.telemetryReceived(req.rawBody.byteLength, r.stored);
        return { stored: r.stored, duplicates: r.duplicates };
      },
      { bodyLimit: TELEMETRY_BODY_LIMIT, config: { rateLimit } },
    );

    addRoute(app, ROUTES.getLogs, async (req) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      const q = req.query;
      const logs = await deps.store.telemetry.logs(v.id, {
        service: q.service || undefined,
        since: q.since ? Date.parse(q.since) : undefined,
        until: q.until ? Date.parse(q.until) : undefined,
        grep: q.grep || undefined,
        limit: q.limit,
      });
      return {
        vessel: name,
        logs: logs.map((l) => ({
          service: l.service,
          level: l.level,
          line: l.line,
          at: iso(l.at),
          receivedAt: iso(l.receivedAt),
          seq: l.seq,
        })),
      };
    });

    addRoute(app, ROUTES.getEvents, async (req) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      const events = await deps.store.telemetry.events(v.id, { limit: req.query.limit });
      const counters = await deps.store.telemetry.counters(v.id);
      return {
        vessel: name,
        events: events.map((e) => ({
          type: e.type,
          data: e.data,
          at: iso(e.at),
          receivedAt: iso(e.receivedAt),
          seq: e.seq,
        })),
        telemetry: counters ?? null,
      };
    });

    addRoute(app, ROUTES.getMetrics, async (req) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      const q = req.query;
      const points = await deps.store.telemetry.metrics(v.id, {
        name: q.name,
        since: q.since ? Date.parse(q.since) : 0,
        limit: q.limit,
      });
      return {
        vessel: name,
        metric: q.name,
        points: points.map((m) => ({ labels: m.labels, value: m.value, at: iso(m.at) })),
      };
    });
  };
}
