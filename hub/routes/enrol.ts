import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { parseEnrolmentToken, EnrolmentError } from '../store/enrolment-store.js';
import { createRateLimiter } from '../rate-limit.js';
import { publicKeyFromBase64 } from '../../shared/trust/keys.js';
import { parseBody } from './validate.js';

export const enrolRequestSchema = z.strictObject({
  token: z.string().max(200),
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 Ed25519 public key'),
  hostname: z.string().max(253).optional(),
  agentVersion: z.string().max(64).optional(),
});

export function enrolRoutes(deps: HubDeps): FastifyPluginAsync {
  const limiter = createRateLimiter(deps.limits.ENROL_ATTEMPTS_PER_MINUTE);
  return async (app) => {
    app.post('/api/v1/enroll', { config: { auth: { kind: 'public' } }, bodyLimit: 16 * 1024 }, async (req, reply) => {
      const wait = limiter.take(req.ip, deps.now());
      if (wait > 0) {
        req.log.warn({ address: req.ip }, 'enrolment rate limit hit');
        return reply
          .code(429)
          .header('retry-after', String(wait))
          .send({ error: 'rate_limited', message: `too many enrolment attempts; retry in ${wait}s` });
      }
      const body = parseBody(enrolRequestSchema, req.body);
      publicKeyFromBase64(body.publicKey);
      const token = parseEnrolmentToken(body.token);
      if (!token) throw new EnrolmentError('enrolment token is not valid', 'bad_token', 1, 401);
      const rootBytes = deps.roots.get(token.rootVersion);
      if (!rootBytes) throw new EnrolmentError('enrolment token is not valid', 'bad_token', 1, 401);
      let vesselId: string;
      try {
        vesselId = deps.enrolments.enrol(token.secret, body.publicKey, req.ip, deps.now());
      } catch (err) {
        req.log.warn({ address: req.ip, reason: (err as Error).message }, 'enrolment refused');
        throw err;
      }
      const vessel = deps.vessels.get(vesselId)!;
      req.log.info({ vessel: vessel.name, address: req.ip }, 'vessel enrolled');
      return { vesselId, name: vessel.name, groups: vessel.groups, root: rootBytes.toString('base64') };
    });
  };
}
