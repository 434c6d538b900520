import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { auditEntry } from '../audit.js';
import { addRoot } from '../roots.js';
import { addRoute } from './register.js';

export function rootRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(app, ROUTES.listRoots, async () => ({ roots: await deps.store.roots.list() }));

    addRoute(app, ROUTES.getRoot, async (req, reply) => {
      const { version } = req.params;
      const bytes = await deps.store.roots.get(version);
      if (!bytes) return reply.code(404).send({ error: 'not_found', message: `no root v${version}` });
      // Immutable once published: a cache on a ship's side of the link can keep it forever.
      return reply.type(MEDIA.envelope).header('cache-control', 'public, max-age=31536000, immutable').send(bytes);
    });

    addRoute(
      app,
      ROUTES.pushRoot,
      async (req, reply) => {
        if (!req.rawBody)
          return reply.code(400).send({ error: 'bad_request', message: 'body: a signed root document is required' });
        const root = await addRoot(deps.store, req.rawBody, deps.now(), (version) =>
          auditEntry(req.principal, 'root.push', { version }),
        );
        req.log.info({ version: root.version }, 'root document accepted');
        return { version: root.version, expires: root.payload.expires };
      },
      { bodyLimit: deps.limits.ROOT_BODY_LIMIT },
    );
  };
}
