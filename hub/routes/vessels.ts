import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { vesselInScope } from '../auth.js';
import { groupNameSchema, vesselNameSchema, type Vessel } from '../store/vessel-store.js';
import { OFFLINE_TOKEN_TTL_MS, ONLINE_TOKEN_TTL_MS } from '../store/enrolment-store.js';
import { desiredStateOf } from '../desired-state.js';
import { vesselStatusReportSchema } from '../../shared/protocol/bodies.js';
import { parseBody, RequestValidationError } from './validate.js';
import { audit } from '../audit.js';

const addVesselSchema = z.strictObject({
  name: vesselNameSchema,
  groups: z.array(groupNameSchema).max(32).default([]),
  offline: z.boolean().default(false),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 24 * 3600)
    .optional(),
});

const listQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(1000),
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
  group: groupNameSchema.optional(),
});

const nameParams = z.strictObject({ name: vesselNameSchema });

export function vesselView(v: Vessel, now: number) {
  return {
    name: v.name,
    groups: v.groups,
    state: v.revokedAt ? 'revoked' : v.enrolledAt ? 'enrolled' : 'pending',
    createdAt: new Date(v.createdAt).toISOString(),
    enrolledAt: v.enrolledAt ? new Date(v.enrolledAt).toISOString() : null,
    revokedAt: v.revokedAt ? new Date(v.revokedAt).toISOString() : null,
    lastContact: v.lastContact ? new Date(v.lastContact).toISOString() : null,
    lastContactAgeSeconds: v.lastContact ? Math.round((now - v.lastContact) / 1000) : null,
    currentRelease: v.currentRelease,
    agentVersion: v.agentVersion,
    status: v.status,
  };
}

export function vesselRoutes(deps: HubDeps): FastifyPluginAsync {
  const issueToken = (v: Vessel, offline: boolean, ttlSeconds?: number) => {
    const latest = deps.roots.latest();
    if (!latest) throw new RequestValidationError('the hub has no root document yet; start it with --root FILE');
    const ttl = ttlSeconds ? ttlSeconds * 1000 : offline ? OFFLINE_TOKEN_TTL_MS : ONLINE_TOKEN_TTL_MS;
    const { token, expiresAt } = deps.enrolments.issue(
      v,
      offline ? 'offline' : 'online',
      ttl,
      { version: latest.root.version, bytes: latest.bytes },
      deps.now(),
    );
    return {
      vessel: v.name,
      token,
      expiresAt: new Date(expiresAt).toISOString(),
      root: offline ? latest.bytes.toString('base64') : undefined,
    };
  };

  return async (app) => {
    app.get('/api/v1/vessels', { config: { auth: { kind: 'ops', role: 'viewer' } } }, async (req) => {
      const q = parseBody(listQuerySchema, req.query, 'query');
      const now = deps.now();
      let list = deps.vessels.list(q.limit, q.offset);
      if (q.group) list = list.filter((v) => v.groups.includes(q.group!));
      return { vessels: list.map((v) => vesselView(v, now)) };
    });

    app.post('/api/v1/vessels', { config: { auth: { kind: 'ops', role: 'operator' } } }, async (req, reply) => {
      const body = parseBody(addVesselSchema, req.body);
      if (!deps.roots.latest())
        throw new RequestValidationError('the hub has no root document yet; start it with --root FILE');
      const v = deps.db.transaction(() => {
        const vessel = deps.vessels.create(body.name, body.groups, deps.now());
        return { vessel, issued: issueToken(vessel, body.offline, body.ttlSeconds) };
      })();
      audit(deps, req.principal, 'vessel.add', { vessel: body.name, groups: body.groups, offline: body.offline });
      return reply.code(201).send(v.issued);
    });

    app.post(
      '/api/v1/vessels/:name/tokens',
      { config: { auth: { kind: 'ops', role: 'operator' } } },
      async (req, reply) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const body = parseBody(
          z.strictObject({
            offline: z.boolean().default(false),
            ttlSeconds: z
              .number()
              .int()
              .min(60)
              .max(365 * 24 * 3600)
              .optional(),
          }),
          req.body ?? {},
        );
        const v = vesselInScope(req, deps.vessels, name);
        if (v.revokedAt) throw new RequestValidationError(`vessel ${name} is revoked`);
        audit(deps, req.principal, 'vessel.token', { vessel: name });
        return reply.code(201).send(issueToken(v, body.offline, body.ttlSeconds));
      },
    );

    app.get('/api/v1/vessels/:name', { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } }, async (req) => {
      const { name } = parseBody(nameParams, req.params, 'path');
      return vesselView(vesselInScope(req, deps.vessels, name), deps.now());
    });

    app.post('/api/v1/vessels/:name/revoke', { config: { auth: { kind: 'ops', role: 'admin' } } }, async (req) => {
      const { name } = parseBody(nameParams, req.params, 'path');
      const v = vesselInScope(req, deps.vessels, name);
      const changed = deps.db.transaction(() => {
        deps.enrolments.cancelFor(v.id);
        return deps.vessels.revoke(v.id, deps.now());
      })();
      audit(deps, req.principal, 'vessel.revoke', { vessel: name });
      req.log.info({ vessel: name }, changed ? 'vessel revoked' : 'vessel was already revoked');
      return vesselView(deps.vessels.get(v.id)!, deps.now());
    });

    app.get(
      '/api/v1/vessels/:name/desired',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req, reply) => {
        const { name } = parseBody(nameParams, req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const embedManifest = (req.query as { with?: unknown }).with === 'manifest';
        const { state, etag } = desiredStateOf(v, deps.roots.latest()?.root.version ?? 0, deps, { embedManifest });
        reply.header('etag', etag).header('cache-control', 'no-cache');
        if (req.headers['if-none-match'] === etag) return reply.code(304).send();
        return state;
      },
    );

    app.post('/api/v1/vessels/:name/status', { config: { auth: { kind: 'vessel' } } }, async (req, reply) => {
      const { name } = parseBody(nameParams, req.params, 'path');
      const v = vesselInScope(req, deps.vessels, name);
      const report = parseBody(vesselStatusReportSchema, req.body);
      deps.vessels.report(v.id, report.current, report.agentVersion, report);
      return reply.code(204).send();
    });
  };
}
