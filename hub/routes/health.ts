import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../app.js';

export function healthRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    const open = { config: { auth: { kind: 'public' as const } } };
    app.get('/health', open, async () => ({ status: 'ok' }));
    app.get('/ready', open, async (_req, reply) => {
      try {
        deps.db.prepare('SELECT 1').get();
      } catch (err) {
        return reply.code(503).send({ status: 'unavailable', reason: `database: ${(err as Error).message}` });
      }
      if (!deps.roots.latest())
        return reply.code(503).send({ status: 'unavailable', reason: 'no root document (start with --root FILE)' });
      return { status: 'ready' };
    });
    app.get('/metrics', open, async (_req, reply) => {
      const r = deps.metrics.registry;
      return reply.type(r.contentType).send(await r.metrics());
    });
  };
}
