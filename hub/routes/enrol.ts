import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { enrolmentTokenHash, parseEnrolmentToken } from '../enrolment.js';
import { HubStoreError } from '../store/hub-store.js';
import { publicKeyFromBase64 } from '../../shared/trust/keys.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { addRoute } from './register.js';
import { perMinute } from './rate-limit.js';

export function enrolRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    // Enrolment needs no credential: a few attempts per minute per address stops token guessing. Counted
    // before the body is read, so a flood costs the hub nothing but the count.
    const rateLimit = perMinute(deps.limits.ENROL_ATTEMPTS_PER_MINUTE, 'too many enrolment attempts', {
      onExceeded: (req) => req.log.warn({ address: req.ip }, 'enrolment rate limit hit'),
    });
    addRoute(
      app,
      ROUTES.enrol,
      async (req) => {
        const body = req.body;
        publicKeyFromBase64(body.publicKey);
        const token = parseEnrolmentToken(body.token);
        if (!token) throw new HubStoreError('enrolment token is not valid', 'bad_token', 401);
        const rootBytes = await deps.store.roots.get(token.rootVersion);
        if (!rootBytes) throw new HubStoreError('enrolment token is not valid', 'bad_token', 401);
        let vesselId: string;
        try {
          vesselId = await deps.store.enrolment.claim(
            { tokenHash: enrolmentTokenHash(token.secret), publicKey: body.publicKey, address: req.ip },
            deps.now(),
          );
        } catch (err) {
          req.log.warn({ address: req.ip, reason: (err as Error).message }, 'enrolment refused');
          throw err;
        }
        const vessel = (await deps.store.vessels.get(vesselId))!;
        req.log.info({ vessel: vessel.name, address: req.ip }, 'vessel enrolled');
        return { vesselId, name: vessel.name, groups: vessel.groups, root: rootBytes.toString('base64') };
      },
      { bodyLimit: 16 * 1024, config: { rateLimit } },
    );
  };
}
