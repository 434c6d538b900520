import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import { HubStoreError, type Vessel } from '../store/hub-store.js';
import { newEnrolmentToken, OFFLINE_TOKEN_TTL_MS, ONLINE_TOKEN_TTL_MS } from '../enrolment.js';
import { latestRoot } from '../roots.js';
import { desiredStateOf } from '../desired-state.js';
import type { IssuedToken, VesselStatusReport, VesselView } from '../../shared/protocol/bodies.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { auditEntry } from '../audit.js';
import { COMPACT_AUTH_HEADER, VESSEL_AUTH_SCHEME } from '../../shared/protocol/vessel-auth.js';
import { encodeFlags, statusFlagsOf } from '../page/facts.js';

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
    statusReceivedAt: v.statusReceivedAt ? new Date(v.statusReceivedAt).toISOString() : null,
    statusAgeSeconds: v.statusReceivedAt ? Math.round((now - v.statusReceivedAt) / 1000) : null,
  };
}

export function vesselRoutes(deps: HubDeps): FastifyPluginAsync {
  /** A new token for the vessel NAME, and what the answer shows of it; the caller stores `stored`. */
  const newToken = async (name: string, offline: boolean, ttlSeconds?: number) => {
    const latest = await latestRoot(deps.store);
    if (!latest) throw new RequestValidationError('the hub has no root document yet; start it with --root FILE');
    const ttl = ttlSeconds ? ttlSeconds * 1000 : offline ? OFFLINE_TOKEN_TTL_MS : ONLINE_TOKEN_TTL_MS;
    const t = newEnrolmentToken(
      offline ? 'offline' : 'online',
      ttl,
      { version: latest.root.version, bytes: latest.bytes },
      deps.now(),
      deps.tls()?.anchor?.pin,
    );
    const issued: IssuedToken = {
      vessel: name,
      token: t.token,
      expiresAt: new Date(t.stored.expiresAt).toISOString(),
      root: offline ? latest.bytes.toString('base64') : undefined,
      hubCa: offline ? deps.tls()?.anchor?.pem : undefined,
    };
    return { stored: t.stored, issued };
  };

  return async (app) => {
    addRoute(app, ROUTES.listVessels, async (req) => {
      const q = req.query;
      const now = deps.now();
      const list = await deps.store.vessels.list({ limit: q.limit, offset: q.offset, group: q.group || undefined });
      return { vessels: list.map((v) => vesselView(v, now)) };
    });

    addRoute(app, ROUTES.addVessel, async (req, reply) => {
      const body = req.body;
      const t = await newToken(body.name, body.offline, body.ttlSeconds);
      // The vessel, its first token and the audit record: one step.
      await deps.store.vessels.create(
        {
          name: body.name,
          groups: body.groups,
          token: t.stored,
          audit: auditEntry(req.principal, 'vessel.add', {
            vessel: body.name,
            groups: body.groups,
            offline: body.offline,
          }),
        },
        deps.now(),
      );
      return reply.code(201).send(t.issued);
    });

    addRoute(app, ROUTES.issueToken, async (req, reply) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      if (v.revokedAt) throw new RequestValidationError(`vessel ${name} is revoked`);
      const t = await newToken(v.name, req.body.offline, req.body.ttlSeconds);
      await deps.store.enrolment.issue(
        v.id,
        t.stored,
        deps.now(),
        auditEntry(req.principal, 'vessel.token', { vessel: name }),
      );
      return reply.code(201).send(t.issued);
    });

    // Re-keying an enrolled vessel: the admin's explicit, audited step. Its token alone may replace the
    // vessel's key; issuing it cancels every other unused token, and the old key works until it is claimed.
    addRoute(app, ROUTES.rekeyVessel, async (req, reply) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      if (v.revokedAt) throw new RequestValidationError(`vessel ${name} is revoked`);
      if (!v.publicKey)
        throw new HubStoreError(`vessel ${name} is not enrolled yet: issue an ordinary token`, 'not_enrolled', 409);
      const t = await newToken(v.name, req.body.offline, req.body.ttlSeconds);
      const { tokensCancelled } = await deps.store.enrolment.issue(
        v.id,
        { ...t.stored, rekey: true },
        deps.now(),
        auditEntry(req.principal, 'vessel.rekey', { vessel: name, offline: req.body.offline }),
      );
      req.log.warn({ vessel: name, tokensCancelled }, 're-key token issued for an enrolled vessel');
      return reply.code(201).send({ ...t.issued, tokensCancelled });
    });

    addRoute(app, ROUTES.getVessel, async (req) =>
      vesselView(await vesselInScope(req, deps.store, req.params.name), deps.now()),
    );

    addRoute(app, ROUTES.revokeVessel, async (req) => {
      const { name } = req.params;
      const v = await vesselInScope(req, deps.store, name);
      // Revoked, its unused enrolment tokens cancelled and the audit record written: one step.
      const { revoked } = await deps.store.vessels.revoke(
        v.id,
        deps.now(),
        auditEntry(req.principal, 'vessel.revoke', { vessel: name }),
      );
      req.log.info({ vessel: name }, revoked ? 'vessel revoked' : 'vessel was already revoked');
      return vesselView((await deps.store.vessels.get(v.id))!, deps.now());
    });

    addRoute(app, ROUTES.getDesired, async (req, reply) => {
      const v = await vesselInScope(req, deps.store, req.params.name);
      const embedManifest = req.query.with === 'manifest';
      const rootVersion = (await deps.store.roots.latest())?.version ?? 0;
      const { state, etag } = await desiredStateOf(v, rootVersion, deps.store, { embedManifest, now: deps.now() });
      // No cache-control: a response to a signed request is not stored by a shared cache (RFC 9111 3.5),
      // and the agent keeps no HTTP cache; the header would cost 25 bytes on every poll.
      reply.header('etag', etag);
      // This hub takes the compact signature form: said to a vessel still signing in full (on a 304 too,
      // or an agent upgraded in place would not hear it until its target changed), and then no more.
      if (req.headers.authorization?.startsWith(`${VESSEL_AUTH_SCHEME} `)) reply.header(COMPACT_AUTH_HEADER, 'tv');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return state;
    });

    addRoute(app, ROUTES.postStatus, async (req, reply) => {
      const v = await vesselInScope(req, deps.store, req.params.name);
      const report = req.body;
      // Ordered by the vessel time it was signed at: a late or older report never overwrites a newer one.
      const at = req.principal?.kind === 'vessel' ? req.principal.at : undefined;
      const stored = await deps.store.vessels.report(
        v.id,
        {
          currentRelease: report.current,
          agentVersion: report.agentVersion,
          status: report,
          receivedAt: deps.now(),
          flags: encodeFlags(statusFlagsOf(report)),
        },
        at,
      );
      if (!stored) req.log.info({ vessel: v.name, at }, 'status report older than the one stored; kept the newer');
      return reply.code(204).send();
    });
  };
}
