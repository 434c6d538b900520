import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { HubDeps } from '../deps.js';
import { checkOpsToken, roleAtLeast } from '../ops-tokens.js';
import { vesselNameSchema, type Role } from '../../shared/protocol/names.js';
import { describeZodError } from '../../shared/validation.js';
import { errorMessage } from '../../shared/errors.js';
import type { PageSession } from '../store/page-records.js';
import { fleetPageQuerySchema, rolloutViewSchema, vesselPageQuerySchema } from './page-query.js';
import {
  renderErrorPage,
  renderFleetPage,
  renderLoginPage,
  renderRolloutPage,
  renderRolloutsPage,
  renderVesselPage,
  type Chrome,
  type RolloutView,
} from './status-page.js';
import { backupColumn } from '../backup-status.js';
import { OFFLINE_AFTER_MS, STALE_AFTER_MS } from '../fleet.js';

const COOKIE = 'tender_session';
// A browser session lasts a working day at most (never past its token's expiry); the token behind it can
// be revoked at any time and the session ends with it.
export const SESSION_MS = 12 * 3600_000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function cookieValue(req: FastifyRequest): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=');
  }
  return undefined;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface SignedIn {
  session: PageSession;
  idHash: string;
  token: { id: string; role: Role; name: string };
}

/**
 * The status page, for people: sign-in by pasting an ops token into a form (never through a URL) makes a
 * server-side session (an HttpOnly, SameSite=Strict cookie holding a random secret, Secure behind TLS);
 * every button is a POST carrying the session's CSRF value, and a cross-origin POST is refused even with it.
 */
export function pageRoutes(deps: HubDeps): FastifyPluginAsync {
  const signedIn = async (req: FastifyRequest): Promise<SignedIn | undefined> => {
    const secret = cookieValue(req);
    if (!secret || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return undefined;
    const idHash = sha256(secret);
    const now = deps.now();
    const session = await deps.store.page.session(idHash, now);
    if (!session) return undefined;
    const t = await deps.store.opsTokens.get(session.tokenId);
    if (!t || t.revokedAt !== null || (t.expiresAt !== null && t.expiresAt <= now)) return undefined;
    if (!roleAtLeast(t.role, 'viewer')) return undefined;
    return { session, idHash, token: { id: t.id, role: t.role, name: t.name } };
  };
  const secure = (req: FastifyRequest) => req.protocol === 'https';
  const html = (reply: FastifyReply, code: number, body: string, nonce?: string) =>
    reply
      .code(code)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'same-origin')
      .header(
        'content-security-policy',
        `default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; ` +
          `frame-ancestors 'none'; base-uri 'none'${nonce ? `; script-src 'nonce-${nonce}'` : ''}`,
      )
      .send(body);
  const chromeOf = (s: SignedIn, nonce?: string): Chrome => ({
    user: { name: s.token.name, role: s.token.role, csrf: s.session.csrf },
    nonce,
  });
  const loginRequired = (reply: FastifyReply) => html(reply, 401, renderLoginPage());
  /** A POST from a page of this hub, with this session's CSRF value; refused otherwise. */
  const checkPost = (req: FastifyRequest, s: SignedIn): string | undefined => {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host !== req.headers.host) return 'cross-origin request refused';
    } else if (origin === 'null') return 'cross-origin request refused';
    const csrf = (req.body as { csrf?: unknown } | undefined)?.csrf;
    if (typeof csrf !== 'string' || !sameSecret(csrf, s.session.csrf)) return 'missing or wrong CSRF value';
    return undefined;
  };
  const clock = () => {
    const now = deps.now();
    return { now, clock: { staleBefore: now - STALE_AFTER_MS, offlineBefore: now - OFFLINE_AFTER_MS } };
  };

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
      const s = await signedIn(req);
      if (!s) return loginRequired(reply);
      const parsed = fleetPageQuerySchema.safeParse(req.query);
      if (!parsed.success)
        return html(reply, 400, renderErrorPage('Bad query', describeZodError(parsed.error, 'query'), chromeOf(s)));
      const q = parsed.data;
      const started = performance.now();
      const { now, clock: c } = clock();
      const [page, counts] = await Promise.all([
        deps.store.page.fleet(
          {
            search: q.q,
            group: q.group,
            state: q.state,
            release: q.release,
            rollout: q.rollout,
            sort: q.sort,
            desc: q.dir === 'desc',
            limit: q.per,
            offset: (q.page - 1) * q.per,
          },
          c,
        ),
        deps.store.page.counts(c),
      ]);
      const nonce = randomBytes(12).toString('base64');
      // Backups per vessel (hub/backup-status.ts): one query over every vessel's backup state, for now.
      const backups = await backupColumn(deps.store, now);
      const body = renderFleetPage(page, counts, q, now, chromeOf(s, nonce), performance.now() - started, backups);
      return html(reply, 200, body, nonce);
    });

    app.get('/vessels/:name', open, async (req, reply) => {
      const s = await signedIn(req);
      if (!s) return loginRequired(reply);
      const name = vesselNameSchema.safeParse((req.params as { name: string }).name);
      const v = name.success ? await deps.store.vessels.getByName(name.data) : undefined;
      if (!v) return html(reply, 404, renderErrorPage('Not found', 'No such vessel.', chromeOf(s)));
      const parsed = vesselPageQuerySchema.safeParse(req.query);
      if (!parsed.success)
        return html(reply, 400, renderErrorPage('Bad query', describeZodError(parsed.error, 'query'), chromeOf(s)));
      const grep = parsed.data.grep?.trim() ?? '';
      const [targets, telemetry, rollouts, events, logs, backups] = await Promise.all([
        deps.store.rollouts.targetsOf(v.id),
        deps.store.telemetry.counters(v.id),
        deps.store.page.vesselRollouts(v.id, 20),
        deps.store.telemetry.events(v.id, { limit: 20 }),
        deps.store.telemetry.logs(v.id, { limit: 100, ...(grep && { grep }) }),
        deps.store.backups.list(v.id, { limit: 10 }),
      ]);
      const desired = [];
      for (const t of targets) {
        const r = await deps.store.releases.get(t.releaseId);
        if (r) desired.push({ app: r.app, version: r.version });
      }
      const body = renderVesselPage(
        { vessel: v, desired, telemetry, rollouts, events, logs, grep, backups },
        deps.now(),
        chromeOf(s),
      );
      return html(reply, 200, body);
    });

    app.get('/rollouts', open, async (req, reply) => {
      const s = await signedIn(req);
      if (!s) return loginRequired(reply);
      return html(
        reply,
        200,
        renderRolloutsPage(await deps.store.rollouts.list({ limit: 200 }), deps.now(), chromeOf(s)),
      );
    });

    const rolloutId = (req: FastifyRequest) => {
      const raw = (req.params as { id: string }).id;
      return /^[1-9][0-9]{0,9}$/.test(raw) ? Number(raw) : undefined;
    };
    const showRollout = async (
      reply: FastifyReply,
      s: SignedIn,
      id: number,
      code = 200,
      message?: string,
      view?: RolloutView,
    ) => {
      const r = await deps.store.rollouts.get(id);
      if (!r) return html(reply, 404, renderErrorPage('Not found', `No rollout #${id}.`, chromeOf(s)));
      const members = await deps.store.rollouts.members(id);
      const body = renderRolloutPage(
        r,
        members,
        deps.now(),
        chromeOf(s),
        roleAtLeast(s.token.role, 'operator'),
        message,
        view,
      );
      return html(reply, code, body);
    };

    app.get('/rollouts/:id', open, async (req, reply) => {
      const s = await signedIn(req);
      if (!s) return loginRequired(reply);
      const id = rolloutId(req);
      if (id === undefined)
        return html(reply, 400, renderErrorPage('Bad request', 'A rollout id is a number.', chromeOf(s)));
      const q = rolloutViewSchema.safeParse(req.query);
      if (!q.success)
        return html(reply, 400, renderErrorPage('Bad query', describeZodError(q.error, 'query'), chromeOf(s)));
      return showRollout(reply, s, id, 200, undefined, q.data);
    });

    // The same engine calls as the API's: serialised with the timer, audited, and a resume drives at once.
    const VERBS = ['pause', 'resume', 'abort'] as const;
    app.post('/rollouts/:id/:verb', open, async (req, reply) => {
      const s = await signedIn(req);
      if (!s) return loginRequired(reply);
      const refused = checkPost(req, s);
      if (refused) return html(reply, 403, renderErrorPage('Refused', refused, chromeOf(s)));
      const id = rolloutId(req);
      const verb = (req.params as { verb: string }).verb;
      if (id === undefined || !(VERBS as readonly string[]).includes(verb))
        return html(reply, 404, renderErrorPage('Not found', 'No such action.', chromeOf(s)));
      if (!roleAtLeast(s.token.role, 'operator'))
        return html(
          reply,
          403,
          renderErrorPage('Refused', `needs the operator role, token has ${s.token.role}`, chromeOf(s)),
        );
      const actor = `ops:${s.token.name}:${s.token.id}`;
      try {
        await deps.rollouts[verb as (typeof VERBS)[number]](id, actor, 'page');
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 404 || status === 409) return showRollout(reply, s, id, status, errorMessage(err));
        throw err;
      }
      req.log.info({ rollout: id, verb, actor }, 'rollout changed from the page');
      return reply.redirect(`/rollouts/${id}`, 303);
    });

    app.get('/login', open, async (req, reply) => {
      if ('token' in ((req.query as object) ?? {}))
        return html(
          reply,
          400,
          renderLoginPage('Tokens are never accepted in a URL (it ends up in history and logs). Paste it here.'),
        );
      return html(reply, 200, renderLoginPage());
    });

    app.post('/login', open, async (req, reply) => {
      const token = (req.body as { token?: unknown } | undefined)?.token;
      const now = deps.now();
      const t = typeof token === 'string' ? await checkOpsToken(deps.store, token.trim(), now) : undefined;
      if (!t || !roleAtLeast(t.role, 'viewer')) return html(reply, 401, renderLoginPage('That token is not valid.'));
      const record = await deps.store.opsTokens.get(t.id);
      const expiresAt = Math.min(now + SESSION_MS, record?.expiresAt ?? Infinity);
      const secret = randomBytes(32).toString('base64url');
      await deps.store.page.createSession(
        sha256(secret),
        { tokenId: t.id, csrf: randomBytes(24).toString('base64url'), createdAt: now, expiresAt },
        now,
      );
      const maxAge = Math.max(1, Math.floor((expiresAt - now) / 1000));
      reply.header(
        'set-cookie',
        `${COOKIE}=${secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${secure(req) ? '; Secure' : ''}`,
      );
      req.log.info({ token: t.id, name: t.name }, 'signed in to the page');
      return reply.redirect('/', 303);
    });

    app.post('/logout', open, async (req, reply) => {
      const s = await signedIn(req);
      if (s) {
        const refused = checkPost(req, s);
        if (refused) return html(reply, 403, renderErrorPage('Refused', refused, chromeOf(s)));
        await deps.store.page.endSession(s.idHash);
      }
      return reply
        .header(
          'set-cookie',
          `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure(req) ? '; Secure' : ''}`,
        )
        .redirect('/', 303);
    });
  };
}
