import type { FastifyPluginAsync } from 'fastify';
import { ROUTES } from '../../shared/protocol/routes.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { openApiText } from '../openapi.js';
import { renderApiReference } from '../page/api-reference.js';
import { addRoute } from './register.js';

/**
 * The OpenAPI document and its rendered reference, without a token: the document is not a secret, and
 * every route it describes still needs its credentials.
 */
export function docsRoutes(): FastifyPluginAsync {
  return async (app) => {
    const text = openApiText(app);
    let page: string | undefined;
    addRoute(app, ROUTES.openapi, async (_req, reply) => reply.type(MEDIA.json).send(text()));
    addRoute(app, ROUTES.docs, async (_req, reply) => {
      page ??= renderApiReference(JSON.parse(text()));
      return reply.type(`${MEDIA.html}; charset=utf-8`).header('cache-control', 'no-cache').send(page);
    });
  };
}
