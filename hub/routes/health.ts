import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { addRoute } from './register.js';

export function healthRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(app, ROUTES.health, async () => ({ status: 'ok' as const }));
    addRoute(app, ROUTES.ready, async (_req, reply) => {
      try {
        await deps.store.ping();
      } catch (err) {
        return reply.code(503).send({ status: 'unavailable', reason: `database: ${(err as Error).message}` });
      }
      if (!(await deps.store.roots.latest()))
        return reply.code(503).send({ status: 'unavailable', reason: 'no root document (start with --root FILE)' });
      return { status: 'ready' as const };
    });
    addRoute(app, ROUTES.metrics, async (_req, reply) => {
      const r = deps.metrics.registry;
      return reply.type(r.contentType).send(await r.metrics());
    });
  };
}
