import type { FastifyReply, FastifyRequest } from 'fastify';
import { TenderError } from '../shared/errors.js';
import { publicKeyFromBase64 } from '../shared/trust/keys.js';
import {
  BODY_DIGEST_HEADER,
  parseVesselAuth,
  replayKeyExpiry,
  replayKeyOf,
  verifyVesselRequest,
} from '../shared/protocol/vessel-auth.js';
import type { Role } from '../shared/protocol/names.js';
import type { RouteAuth } from '../shared/protocol/routes.js';
import { checkOpsToken, roleAtLeast } from './ops-tokens.js';
import type { HubStore, Vessel } from './store/hub-store.js';

/**
 * Who is calling: an ops token (bearer, with a role) or a vessel (signed request). Ownership of vessel
 * data comes from here, never from a path or a body field.
 */
export type Principal =
  | { kind: 'ops'; tokenId: string; role: Role; name: string }
  /** `at`: the vessel time the request was signed at (orders its status reports). */
  | { kind: 'vessel'; vessel: Vessel; at: number };

export type { RouteAuth };

export class AuthError extends TenderError {}

export const UNAUTHORIZED_BODY = { error: 'unauthorized', message: 'missing, invalid or expired credentials' } as const;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
}

export function createAuthenticator(deps: { store: HubStore; now?: () => number }) {
  const now = deps.now ?? Date.now;

  async function identify(req: FastifyRequest): Promise<Principal | undefined> {
    const header = req.headers.authorization;
    if (!header) return undefined;
    if (header.startsWith('Bearer ')) {
      const t = await checkOpsToken(deps.store, header.slice(7).trim(), now());
      return t && { kind: 'ops', tokenId: t.id, role: t.role, name: t.name };
    }
    const auth = parseVesselAuth(header, req.url);
    if (!auth) return undefined;
    // The compact form names the vessel by the path it signs; the full form by its id.
    const vessel =
      auth.vesselName !== undefined
        ? await deps.store.vessels.getByName(auth.vesselName)
        : await deps.store.vessels.get(auth.vesselId);
    if (!vessel || vessel.revokedAt !== null || !vessel.publicKey) return undefined;
    const digest = req.headers[BODY_DIGEST_HEADER];
    const ok = verifyVesselRequest(
      publicKeyFromBase64(vessel.publicKey),
      auth,
      req.method,
      req.url,
      typeof digest === 'string' ? digest : undefined,
      now(),
    );
    if (!ok) return undefined;
    // Inside the clock window a signed request counts once: a captured one sent again (a status report,
    // a telemetry batch, an acknowledgement) is refused as if its signature were wrong. Recorded only
    // after the signature checks, so nobody can fill the table with made-up keys.
    if (!(await deps.store.requests.firstUse(vessel.id, replayKeyOf(auth), replayKeyExpiry(auth), now()))) {
      req.log.warn({ vessel: vessel.name, address: req.ip }, 'replayed vessel request refused');
      return undefined;
    }
    await deps.store.vessels.touch(vessel.id, req.ip, now());
    return { kind: 'vessel', vessel, at: auth.ts };
  }

  /** onRequest hook: 401 with one uniform body when credentials are missing or wrong, 403 when too weak. */
  return async function authenticate(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Unknown routes still need credentials, so probing paths tells an outsider nothing.
    const need: RouteAuth = req.routeOptions.config?.auth ?? { kind: 'ops', role: 'viewer' };
    if (need.kind === 'public') return;
    const p = await identify(req);
    if (!p) {
      return reply.code(401).header('www-authenticate', 'Bearer, Tender-Vessel, TV').send(UNAUTHORIZED_BODY);
    }
    req.principal = p;
    if (need.kind === 'vessel' && p.kind !== 'vessel') {
      return reply.code(403).send({ error: 'forbidden', message: 'this route is for vessels' });
    }
    if (need.kind === 'ops' && p.kind !== 'ops') {
      return reply.code(403).send({ error: 'forbidden', message: 'vessel credentials cannot call ops routes' });
    }
    if ((need.kind === 'ops' || need.kind === 'vessel-or-ops') && p.kind === 'ops' && !roleAtLeast(p.role, need.role)) {
      return reply.code(403).send({ error: 'forbidden', message: `needs the ${need.role} role, token has ${p.role}` });
    }
  };
}

/**
 * The vessel a per-vessel route may touch: a vessel only its own (any other name is 404, as if it did not
 * exist); ops with a sufficient role any.
 */
export async function vesselInScope(req: FastifyRequest, store: HubStore, name: string): Promise<Vessel> {
  const p = req.principal;
  if (p?.kind === 'vessel') {
    if (p.vessel.name !== name) throw new AuthError(`no vessel named ${name}`, 'not_found', 1, 404);
    return p.vessel;
  }
  const v = await store.vessels.getByName(name);
  if (!v) throw new AuthError(`no vessel named ${name}`, 'not_found', 1, 404);
  return v;
}

/**
 * preValidation hook of per-vessel routes: a vessel naming any vessel but itself gets 404 before its
 * body is even looked at, so a malformed body sent to another vessel's path tells it nothing either.
 */
export async function ownVesselOnly(req: FastifyRequest): Promise<void> {
  const p = req.principal;
  const name = (req.params as { name?: unknown }).name;
  if (p?.kind === 'vessel' && name !== p.vessel.name)
    throw new AuthError(`no vessel named ${String(name)}`, 'not_found', 1, 404);
}
