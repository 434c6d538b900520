import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import type { Vessel } from '../store/vessel-store.js';
import { OFFLINE_TOKEN_TTL_MS, ONLINE_TOKEN_TTL_MS } from '../store/enrolment-store.js';
import { desiredStateOf } from '../desired-state.js';
import type { IssuedToken, VesselStatusReport, VesselView } from '../../shared/protocol/bodies.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { audit } from '../audit.js';

export function vesselView(v: Vessel, now: number): VesselView {
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
    // Stored as the vessel sent it, after the report schema let it through.
    status: v.status as VesselStatusReport | null,
  };
}

export function vesselRoutes(deps: HubDeps): FastifyPluginAsync {
  const issueToken = (v: Vessel, offline: boolean, ttlSeconds?: number): IssuedToken => {
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
    addRoute(app, ROUTES.listVessels, async (req) => {
      const q = req.query;
      const now = deps.now();
      let list = deps.vessels.list(q.limit, q.offset);
      if (q.group) list = list.filter((v) => v.groups.includes(q.group!));
      return { vessels: list.map((v) => vesselView(v, now)) };
    });

    addRoute(app, ROUTES.addVessel, async (req, reply) => {
      const body = req.body;
      if (!deps.roots.latest())
        throw new RequestValidationError('the hub has no root document yet; start it with --root FILE');
      const v = deps.db.transaction(() => {
        const vessel = deps.vessels.create(body.name, body.groups, deps.now());
        return { vessel, issued: issueToken(vessel, body.offline, body.ttlSeconds) };
      })();
      audit(deps, req.principal, 'vessel.add', { vessel: body.name, groups: body.groups, offline: body.offline });
      return reply.code(201).send(v.issued);
    });

    addRoute(app, ROUTES.issueToken, async (req, reply) => {
      const { name } = req.params;
      const v = vesselInScope(req, deps.vessels, name);
      if (v.revokedAt) throw new RequestValidationError(`vessel ${name} is revoked`);
      audit(deps, req.principal, 'vessel.token', { vessel: name });
      return reply.code(201).send(issueToken(v, req.body.offline, req.body.ttlSeconds));
    });

    addRoute(app, ROUTES.getVessel, async (req) =>
      vesselView(vesselInScope(req, deps.vessels, req.params.name), deps.now()),
    );

    addRoute(app, ROUTES.revokeVessel, async (req) => {
      const { name } = req.params;
      const v = vesselInScope(req, deps.vessels, name);
      const changed = deps.db.transaction(() => {
        deps.enrolments.cancelFor(v.id);
        return deps.vessels.revoke(v.id, deps.now());
      })();
      audit(deps, req.principal, 'vessel.revoke', { vessel: name });
      req.log.info({ vessel: name }, changed ? 'vessel revoked' : 'vessel was already revoked');
      return vesselView(deps.vessels.get(v.id)!, deps.now());
    });

    addRoute(app, ROUTES.getDesired, async (req, reply) => {
      const v = vesselInScope(req, deps.vessels, req.params.name);
      const embedManifest = req.query.with === 'manifest';
      const { state, etag } = desiredStateOf(v, deps.roots.latest()?.root.version ?? 0, deps, { embedManifest });
      reply.header('etag', etag).header('cache-control', 'no-cache');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return state;
    });

    addRoute(app, ROUTES.postStatus, async (req, reply) => {
      const v = vesselInScope(req, deps.vessels, req.params.name);
      const report = req.body;
      deps.vessels.report(v.id, report.current, report.agentVersion, report);
      return reply.code(204).send();
    });
  };
}
