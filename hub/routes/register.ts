import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { RouteAuth, RouteDef } from '../../shared/protocol/routes.js';
import { ownVesselOnly } from '../auth.js';

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

/** The request of a catalogue route, typed from its schemas (what the zod type provider validated). */
export type RouteRequest<R extends RouteDef> = FastifyRequest<{
  Params: Out<R['params']>;
  Querystring: Out<R['querystring']>;
  Body: Out<R['body']>;
}>;

export type RouteHandler<R extends RouteDef> = (req: RouteRequest<R>, reply: FastifyReply) => Promise<unknown>;

/** How the OpenAPI document names each kind of credential (the schemes are declared in openapi.ts). */
function securityOf(auth: RouteAuth): Record<string, string[]>[] {
  switch (auth.kind) {
    case 'public':
      return [];
    case 'ops':
      return [{ bearer: [] }];
    case 'vessel':
      return [{ vessel: [] }];
    case 'vessel-or-ops':
      return [{ bearer: [] }, { vessel: [] }];
  }
}

function roleText(auth: RouteAuth): string {
  switch (auth.kind) {
    case 'public':
      return 'none';
    case 'ops':
      return `ops token, role ${auth.role} or above`;
    case 'vessel':
      return 'the vessel itself (signed request)';
    case 'vessel-or-ops':
      return `the vessel itself, or an ops token with role ${auth.role} or above`;
  }
}

/**
 * Register a route of the catalogue: its schemas go to fastify, which validates parameters, query and
 * JSON body with them (zod, through fastify-type-provider-zod) and checks every JSON answer against its
 * response schema; the same schemas make the OpenAPI document (openapi.ts).
 */
export function addRoute<R extends RouteDef>(
  app: FastifyInstance,
  def: R,
  handler: RouteHandler<R>,
  opts: { bodyLimit?: number; config?: Omit<FastifyContextConfig, 'auth'> } = {},
): void {
  const response = Object.fromEntries(
    Object.entries(def.response).map(([code, spec]) => [
      code,
      spec.content ? { description: spec.description, content: spec.content } : z.null().describe(spec.description),
    ]),
  );
  app.route({
    method: def.method,
    url: def.url,
    schema: {
      operationId: def.operationId,
      summary: def.summary,
      ...(def.description ? { description: def.description } : {}),
      tags: def.tags,
      security: securityOf(def.auth),
      'x-tender-auth': roleText(def.auth),
      ...(def.params ? { params: def.params } : {}),
      ...(def.querystring ? { querystring: def.querystring } : {}),
      ...(def.body ? { body: def.body } : {}),
      ...(def.rawBody ? { 'x-tender-raw-body': def.rawBody } : {}),
      response,
    },
    config: { ...opts.config, auth: def.auth },
    ...(def.url.includes('/:name') ? { preValidation: ownVesselOnly } : {}),
    ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
    handler: handler as (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
  });
}
