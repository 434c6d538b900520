import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { HubDeps } from '../deps.js';
import { checkOpsToken, roleAtLeast } from '../ops-tokens.js';
import { vesselNameSchema } from '../../shared/protocol/names.js';
import { renderFleetPage, renderLoginPage, renderVesselPage } from './status-page.js';

const COOKIE = 'tender_session';
// A browser session lasts a working day; the token behind it can be revoked at any time.
const SESSION_MAX_AGE_S = 12 * 3600;

function cookieToken(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie ?? '';
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/**
 * The status page is for people, so it signs in with a cookie holding an ops token (set from a login form
 * or a one-click `/login?token=` link printed by the demo) rather than an Authorization header.
 */
export function pageRoutes(deps: HubDeps): FastifyPluginAsync {
  const signedIn = async (req: FastifyRequest) => {
    const t = cookieToken(req);
    const tok = t ? await checkOpsToken(deps.store, t) : undefined;
    return tok && roleAtLeast(tok.role, 'viewer') ? tok : undefined;
  };
  const html = (reply: FastifyReply, code: number, body: string) =>
    reply
      .code(code)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-frame-options', 'DENY')
      .send(body);
  const setSession = (reply: FastifyReply, token: string) =>
    reply.header(
      'set-cookie',
      `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MAX_AGE_S}`,
    );

  return async (app) => {
    const open = { config: { auth: { kind: 'public' as const } } };
    app.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );

    app.get('/', open, async (req, reply) => {
      if (!(await signedIn(req))) return html(reply, 401, renderLoginPage());
      const backlog = new Map(
        (await deps.store.telemetry.fleetCounters()).map((t) => [
          t.vessel,
          { backlog: t.backlog, dropped: Object.values(t.drops).reduce((a, d) => a + d.records, 0) },
        ]),
      );
      return html(reply, 200, renderFleetPage(await deps.store.vessels.list({ limit: 100_000 }), deps.now(), backlog));
    });

    app.get('/vessels/:name', open, async (req, reply) => {
      if (!(await signedIn(req))) return html(reply, 401, renderLoginPage());
      const name = vesselNameSchema.safeParse((req.params as { name: string }).name);
      const v = name.success ? await deps.store.vessels.getByName(name.data) : undefined;
      if (!v) return html(reply, 404, renderLoginPage('No such vessel.').replace('Sign in', 'Not found'));
      return html(reply, 200, renderVesselPage(v, deps.now()));
    });

    app.get('/login', open, async (req, reply) => {
      const token = (req.query as { token?: string }).token;
      if (token && (await checkOpsToken(deps.store, token))) return setSession(reply, token).redirect('/', 303);
      return html(reply, token ? 401 : 200, renderLoginPage(token ? 'That token is not valid.' : undefined));
    });

    app.post('/login', open, async (req, reply) => {
      const token = (req.body as { token?: string } | undefined)?.token ?? '';
      if (!(await checkOpsToken(deps.store, token)))
        return html(reply, 401, renderLoginPage('That token is not valid.'));
      return setSession(reply, token).redirect('/', 303);
    });

    app.post('/logout', open, async (_req, reply) =>
      reply.header('set-cookie', `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`).redirect('/', 303),
    );
  };
}
