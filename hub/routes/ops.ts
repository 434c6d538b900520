import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { audit } from '../audit.js';
import { addRoute } from './register.js';

export function opsRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(app, ROUTES.createOpsToken, async (req, reply) => {
      const t = deps.opsTokens.create(req.body.role, req.body.name);
      audit(deps, req.principal, 'token.create', { id: t.id, role: req.body.role, name: req.body.name });
      return reply.code(201).send({ id: t.id, role: req.body.role, token: t.token });
    });
  };
}
