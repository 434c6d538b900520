import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerFactory,
} from 'fastify';
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import rateLimit from '@fastify/rate-limit';
import { sharedRateStore } from './routes/rate-limit.js';
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { TenderError } from '../shared/errors.js';
import { parseStrictJson } from '../shared/trust/strict-json.js';
import { describeIssue } from '../shared/validation.js';
import { bodyDigest, COMPACT_AUTH_SCHEME, VESSEL_AUTH_SCHEME } from '../shared/protocol/vessel-auth.js';
import { HEADER, MEDIA } from '../shared/protocol/http.js';
import { createLogger } from '../shared/log.js';
import { createAuthenticator, UNAUTHORIZED_BODY } from './auth.js';
import { openSqliteHubStore } from './store/sqlite/sqlite-hub-store.js';
import { createHubMetrics } from './metrics.js';
import { startRetention } from './retention.js';
import { releaseRoutes } from './routes/releases.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { createRolloutEngine, ROLLOUT_TICK_MS } from './rollout/engine.js';
import { telemetryRoutes } from './routes/telemetry.js';
import { chunkRoutes } from './routes/chunks.js';
import { packRoutes } from './routes/packs.js';
import { bundleRoutes } from './routes/bundles.js';
import { backupRoutes } from './routes/backups.js';
import { hubTlsRoutes } from './routes/hub-tls.js';
import * as limits from './limits.js';
import type { HubDeps, HubLimits, HubOptions } from './deps.js';
import { TLS_SESSION_TIMEOUT_S, type HubTlsState } from './tls.js';
import { registerOpenApi } from './openapi.js';
import { healthRoutes } from './routes/health.js';
import { enrolRoutes } from './routes/enrol.js';
import { vesselRoutes } from './routes/vessels.js';
import { rootRoutes } from './routes/roots.js';
import { opsRoutes } from './routes/ops.js';
import { docsRoutes } from './routes/docs.js';
import { pageRoutes } from './page/page-routes.js';

export type { HubDeps, HubOptions } from './deps.js';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

// Addresses and vessels the rate limiter remembers at once (least recently seen go first).
const RATE_LIMIT_KEYS = 100_000;
// Status codes the edge answers itself, with the code its error body carries.
const ERROR_CODES: Record<number, string> = {
  401: 'unauthorized',
  404: 'not_found',
  413: 'too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};
// Where a schema failure was, as the message names it when the whole part is wrong.
const PART_NAMES: Record<string, string> = { body: 'body', params: 'path', querystring: 'query', headers: 'headers' };

/** Counts connections per address and refuses past the cap, so one client cannot hold every socket. */
function serverFactory(lim: HubLimits, tls: HubOptions['tls']): FastifyServerFactory {
  return (handler) => {
    const http = {
      headersTimeout: lim.HEADERS_TIMEOUT_MS,
      requestTimeout: lim.REQUEST_TIMEOUT_MS,
      keepAliveTimeout: lim.KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: lim.TIMEOUT_CHECK_INTERVAL_MS,
    };
    const server: Server = tls
      ? createHttpsServer(
          {
            ...http,
            ...tls.state.context,
            ticketKeys: tls.ticketKeys,
            sessionTimeout: TLS_SESSION_TIMEOUT_S,
            handshakeTimeout: lim.TLS_HANDSHAKE_TIMEOUT_MS,
          },
          handler,
        )
      : createServer(http, handler);
    server.maxConnections = lim.MAX_CONNECTIONS;
    const perAddress = new Map<string, number>();
    server.on('connection', (socket) => {
      const addr = socket.remoteAddress ?? '?';
      const n = (perAddress.get(addr) ?? 0) + 1;
      if (n > lim.MAX_CONNECTIONS_PER_ADDRESS) {
        socket.destroy();
        return;
      }
      perAddress.set(addr, n);
      socket.once('close', () => {
        const left = (perAddress.get(addr) ?? 1) - 1;
        if (left <= 0) perAddress.delete(addr);
        else perAddress.set(addr, left);
      });
    });
    return server;
  };
}

/** Build the hub app without listening: tests inject requests or listen on port 0. */
export async function buildHub(opts: HubOptions): Promise<{
  app: FastifyInstance;
  deps: HubDeps;
  routes: string[];
  /** Serve a renewed certificate from the next handshake on (SIGHUP); connections open keep theirs. */
  reloadTls: (state: HubTlsState) => void;
}> {
  const lim: HubLimits = { ...limits, ...(opts.limits ?? {}) };
  // The embedded default: SQLite and a chunk folder under dataDir (its hub.db and chunks/).
  const store = opts.store ?? openSqliteHubStore(opts.dataDir);
  const now = opts.now ?? Date.now;
  const metrics = createHubMetrics(store, now, { perVessel: opts.perVesselMetrics });
  const log = (opts.logger ?? createLogger('hub', 'silent')) as Logger;
  const rollouts = createRolloutEngine({
    store,
    now: () => deps.now(),
    log,
    onEvent: (kind) => metrics.rolloutEvent(kind),
  });
  let tlsState: HubTlsState | undefined = opts.tls?.state;
  const deps: HubDeps = { store, metrics, rollouts, limits: lim, now, tls: () => tlsState };
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: lim.DEFAULT_BODY_LIMIT,
    serverFactory: serverFactory(lim, opts.tls),
    return503OnClosing: true,
    // The router's own refusals (a path parameter over its length cap, a URL that does not decode) in the
    // hub's one error shape, without echoing the path back.
    frameworkErrors: (err, _req, reply) => {
      const status = err.statusCode ?? 400;
      const message =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'a path parameter is longer than any valid value'
          : err.code === 'FST_ERR_BAD_URL'
            ? 'the path is not a valid URL (bad percent-encoding)'
            : 'malformed request';
      return (reply as FastifyReply)
        .code(status)
        .send({ error: status === 414 ? 'uri_too_long' : 'bad_request', message });
    },
  });

  // Parameters, queries and JSON bodies are validated with the routes' zod schemas, and every JSON answer
  // is checked against its response schema (an answer that does not match is a 500, never sent).
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    [MEDIA.json, MEDIA.envelope, MEDIA.telemetry, MEDIA.uploadPack],
    { parseAs: 'buffer' },
    (req, body, done) => {
      const buf = body as Buffer;
      if (req.principal?.kind === 'vessel') {
        // The signature covered the declared digest; the body must be what was declared.
        const declared = req.headers[HEADER.bodyDigest];
        if (bodyDigest(buf) !== declared) {
          done(
            Object.assign(new Error(UNAUTHORIZED_BODY.message), { statusCode: 401, code: 'unauthorized' }),
            undefined,
          );
          return;
        }
      }
      req.rawBody = buf;
      // Telemetry arrives compressed (its route decompresses under a cap and parses it); packs are binary.
      const type = req.headers['content-type'] ?? '';
      if (type.startsWith(MEDIA.telemetry) || type.startsWith(MEDIA.uploadPack)) return done(null, undefined);
      try {
        done(
          null,
          buf.byteLength === 0
            ? undefined
            : parseStrictJson(buf, { maxBytes: buf.byteLength, maxDepth: lim.MAX_JSON_DEPTH }),
        );
      } catch (err) {
        done(Object.assign(err as Error, { statusCode: 400 }), undefined);
      }
    },
  );

  app.addHook('onRequest', createAuthenticator({ store, now }));
  // Answers to vessels go without Connection and Keep-Alive (HTTP/1.1 is persistent without them, and
  // the agent keeps its idle sockets under the hub's timeout itself): 47 bytes less on every poll.
  app.addHook('onRequest', async (req, reply) => {
    const scheme = req.headers.authorization?.split(' ', 1)[0];
    if (scheme === VESSEL_AUTH_SCHEME || scheme === COMPACT_AUTH_SCHEME) reply.raw.removeHeader('connection');
  });
  // Every answer counted by the pattern it matched, so a path full of vessel names makes no new series.
  app.addHook('onResponse', async (req, reply) => {
    deps.metrics.request(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((err: FastifyError | TenderError, req, reply) => {
    if (err instanceof TenderError) {
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      const retryAfter = (err as { retryAfter?: number }).retryAfter;
      if (err.status === 429 && retryAfter) reply.header('retry-after', String(retryAfter));
      return reply.code(err.status).send({ error: err.code, message: err.message });
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const first = err.validation[0]!;
      const keys = first.keyword === 'unrecognized_keys' ? (first.params as { keys?: string[] }).keys : undefined;
      const path = first.instancePath.split('/').filter(Boolean);
      const part = PART_NAMES[err.validationContext ?? 'body'] ?? 'body';
      return reply
        .code(400)
        .send({ error: 'bad_request', message: describeIssue(path, first.message ?? 'invalid', part, keys) });
    }
    const status = err.statusCode ?? 500;
    if (status < 500)
      return reply.code(status).send({ error: ERROR_CODES[status] ?? 'bad_request', message: err.message });
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );

  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
  });
  // Limits are set per route (enrolment per address, telemetry per vessel); the store is an LRU, so a
  // scan from many addresses cannot grow memory without bound.
  // Only Retry-After, and only on a 429: a vessel's every telemetry answer crosses a metered link.
  // On a store shared by several hubs (PostgreSQL) the counts are the store's, so a limit holds across them.
  await app.register(rateLimit, {
    global: false,
    cache: RATE_LIMIT_KEYS,
    ...(store.counters && { store: sharedRateStore(store.counters, now) }),
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: {
      'x-ratelimit-limit': false,
      'x-ratelimit-remaining': false,
      'x-ratelimit-reset': false,
      'retry-after': true,
    },
  });
  await registerOpenApi(app);
  await app.register(healthRoutes(deps));
  await app.register(enrolRoutes(deps));
  await app.register(vesselRoutes(deps));
  await app.register(rootRoutes(deps));
  await app.register(opsRoutes(deps));
  await app.register(releaseRoutes(deps));
  await app.register(rolloutRoutes(deps));
  await app.register(telemetryRoutes(deps));
  await app.register(chunkRoutes(deps));
  await app.register(packRoutes(deps));
  await app.register(bundleRoutes(deps));
  await app.register(backupRoutes(deps));
  await app.register(hubTlsRoutes(deps));
  await app.register(docsRoutes());
  await app.register(pageRoutes(deps));
  const stopRetention = startRetention(store, now, app.log);
  // Waves advance and halt by themselves; the first tick resumes whatever a restart left mid-wave.
  if ((opts.rolloutTickMs ?? ROLLOUT_TICK_MS) > 0) rollouts.startTimer(opts.rolloutTickMs ?? ROLLOUT_TICK_MS);
  app.addHook('onClose', async () => {
    await rollouts.stop();
    await stopRetention();
    await store.close();
  });
  const reloadTls = (state: HubTlsState) => {
    if (!opts.tls) throw new TenderError('the hub was started without TLS; a certificate cannot be loaded now');
    (app.server as unknown as TlsServer).setSecureContext(state.context);
    tlsState = state;
  };
  return { app, deps, routes, reloadTls };
}
