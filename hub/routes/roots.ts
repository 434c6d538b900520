import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { parseBody } from './validate.js';
import { audit } from '../audit.js';

export function rootRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/v1/roots', { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } }, async () => ({
      roots: deps.roots.list(),
    }));

    app.get(
      '/api/v1/roots/:version',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req, reply) => {
        const { version } = parseBody(
          z.strictObject({ version: z.coerce.number().int().min(1).max(1_000_000_000) }),
          req.params,
          'path',
        );
        const bytes = deps.roots.get(version);
        if (!bytes) return reply.code(404).send({ error: 'not_found', message: `no root v${version}` });
        // Immutable once published: a cache on a ship's side of the link can keep it forever.
        return reply
          .type('application/vnd.tender.envelope+json')
          .header('cache-control', 'public, max-age=31536000, immutable')
          .send(bytes);
      },
    );

    app.put(
      '/api/v1/roots',
      { config: { auth: { kind: 'ops', role: 'admin' } }, bodyLimit: deps.limits.ROOT_BODY_LIMIT },
      async (req, reply) => {
        if (!req.rawBody)
          return reply.code(400).send({ error: 'bad_request', message: 'body: a signed root document is required' });
        const root = deps.roots.add(req.rawBody);
        audit(deps, req.principal, 'root.push', { version: root.version });
        req.log.info({ version: root.version }, 'root document accepted');
        return { version: root.version, expires: root.payload.expires };
      },
    );
  };
}
