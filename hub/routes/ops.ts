import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { auditEntry } from '../audit.js';
import { createOpsToken } from '../ops-tokens.js';
import { addRoute } from './register.js';

export function opsRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(app, ROUTES.createOpsToken, async (req, reply) => {
      const { role, name } = req.body;
      // The id is made before the row, so the audit record that names it commits with it.
      const t = await createOpsToken(deps.store, role, name, deps.now(), (id) =>
        auditEntry(req.principal, 'token.create', { id, role, name }),
      );
      return reply.code(201).send({ id: t.id, role: req.body.role, token: t.token });
    });
  };
}
