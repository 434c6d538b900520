import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { OPS_TOKEN_DEFAULT_TTL_SECONDS } from '../../shared/protocol/ops-bodies.js';
import { auditEntry } from '../audit.js';
import { createOpsToken, opsTokenView } from '../ops-tokens.js';
import { HubStoreError } from '../store/hub-store.js';
import { addRoute } from './register.js';

export function opsRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(app, ROUTES.createOpsToken, async (req, reply) => {
      const { role, name } = req.body;
      const now = deps.now();
      const expiresAt = now + (req.body.ttlSeconds ?? OPS_TOKEN_DEFAULT_TTL_SECONDS) * 1000;
      // The id is made before the row, so the audit record that names it commits with it.
      const t = await createOpsToken(
        deps.store,
        role,
        name,
        now,
        (id) =>
          auditEntry(req.principal, 'token.create', { id, role, name, expiresAt: new Date(expiresAt).toISOString() }),
        expiresAt,
      );
      return reply.code(201).send({ id: t.id, role, token: t.token, expiresAt: new Date(expiresAt).toISOString() });
    });

    addRoute(app, ROUTES.listOpsTokens, async () => {
      const now = deps.now();
      return { tokens: (await deps.store.opsTokens.list()).map((t) => opsTokenView(t, now)) };
    });

    addRoute(app, ROUTES.revokeOpsToken, async (req) => {
      const { id } = req.params;
      const now = deps.now();
      if (!(await deps.store.opsTokens.get(id))) throw new HubStoreError(`no ops token ${id}`, 'not_found', 404);
      const revoked = await deps.store.opsTokens.revoke(id, now, auditEntry(req.principal, 'token.revoke', { id }));
      const t = (await deps.store.opsTokens.get(id))!;
      req.log.info({ token: id }, revoked ? 'ops token revoked' : 'ops token was already revoked');
      return opsTokenView(t, now);
    });

    // Reading the audit log is itself audited only by the request log: an export writes nothing.
    addRoute(app, ROUTES.listAudit, async (req) => {
      const q = req.query;
      const records = await deps.store.audit.list({
        limit: q.limit,
        after: q.after,
        since: q.since === undefined ? undefined : Date.parse(q.since),
      });
      return {
        records: records.map((r) => ({
          id: r.id,
          at: new Date(r.at).toISOString(),
          actor: r.actor,
          action: r.action,
          detail: r.detail,
        })),
        next: records.length === q.limit ? records[records.length - 1]!.id : null,
      };
    });
  };
}
