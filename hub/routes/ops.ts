import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { ROLES } from '../store/ops-token-store.js';
import { OPENAPI_DOCUMENT } from '../openapi.js';
import { parseBody } from './validate.js';
import { audit } from '../audit.js';

export function opsRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/v1/tokens', { config: { auth: { kind: 'ops', role: 'admin' } } }, async (req, reply) => {
      const body = parseBody(z.strictObject({ role: z.enum(ROLES), name: z.string().min(1).max(64) }), req.body);
      const t = deps.opsTokens.create(body.role, body.name);
      audit(deps, req.principal, 'token.create', { id: t.id, role: body.role, name: body.name });
      return reply.code(201).send({ id: t.id, role: body.role, token: t.token });
    });
    app.get(
      '/api/v1/openapi.json',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async () => OPENAPI_DOCUMENT,
    );
  };
}
