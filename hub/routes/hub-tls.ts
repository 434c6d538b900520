import type { FastifyPluginAsync } from 'fastify';
import { TenderError } from '../../shared/errors.js';
import { verifyHubTlsEnvelope, MAX_HUB_TLS_BYTES, showPins } from '../../shared/protocol/hub-tls.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import type { HubDeps } from '../deps.js';
import type { HubStore } from '../store/hub-store.js';
import { latestRoot } from '../roots.js';
import { addRoute } from './register.js';
import { RequestValidationError } from './validate.js';

export class HubTlsRouteError extends TenderError {}

/**
 * The pins of the announcement in force, read back under today's root; undefined when none was published
 * (vessels then pin the CA of their enrolment). One signed under a root since rotated away gives [] (the
 * vessels refuse it too).
 */
export async function announcedPins(store: HubStore): Promise<{ sequence: number; pins: string[] } | undefined> {
  const latest = await store.hubTls.latest();
  if (!latest) return undefined;
  const root = await latestRoot(store);
  try {
    return { sequence: latest.sequence, pins: root ? verifyHubTlsEnvelope(root.root, latest.envelope).pins : [] };
  } catch {
    return { sequence: latest.sequence, pins: [] };
  }
}

/**
 * The hub's TLS trust, announced (shared/protocol/hub-tls.ts). Ops publish an announcement signed on the
 * publisher machine; the hub checks it against its root, and refuses one that leaves out the CA it serves
 * under now (every vessel applying it would refuse this hub on its next connection). With several hubs
 * behind a balancer, the hub that takes the request checks its own certificate.
 */
export function hubTlsRoutes(deps: Pick<HubDeps, 'store' | 'now' | 'tls'>): FastifyPluginAsync {
  const serving = () => deps.tls()?.anchor?.pin ?? null;
  return async (app) => {
    addRoute(
      app,
      ROUTES.publishHubTls,
      async (req, reply) => {
        if (!req.rawBody) throw new RequestValidationError('body: a signed hub-tls announcement is required');
        const root = await latestRoot(deps.store);
        if (!root) throw new HubTlsRouteError('the hub has no root yet', 'not_ready', 1, 503);
        let a;
        try {
          a = verifyHubTlsEnvelope(root.root, req.rawBody);
        } catch (err) {
          throw new RequestValidationError(`hub-tls announcement refused: ${(err as Error).message}`);
        }
        const now = serving();
        if (now !== null && !a.pins.includes(now))
          throw new HubTlsRouteError(
            `the announcement lists ${showPins(a.pins)} but this hub serves under ${showPins([now])}: ` +
              'vessels would refuse it on their next connection (list both CAs until the hub has switched)',
            'would_strand',
            1,
            409,
          );
        const by = req.principal?.kind === 'ops' ? `ops:${req.principal.name}` : 'unknown';
        const r = await deps.store.hubTls.publish(
          { sequence: a.doc.sequence, envelope: req.rawBody, publishedBy: by },
          deps.now(),
          { actor: by, action: 'hub-tls.publish', detail: { sequence: a.doc.sequence, pins: a.pins } },
        );
        req.log.info({ sequence: a.doc.sequence, pins: a.pins, created: r.created }, 'hub TLS announcement published');
        return reply.code(r.created ? 201 : 200).send({ sequence: a.doc.sequence, pins: a.pins, created: r.created });
      },
      { bodyLimit: MAX_HUB_TLS_BYTES },
    );

    addRoute(app, ROUTES.getHubTls, async () => {
      const latest = await deps.store.hubTls.latest();
      const pins = (await announcedPins(deps.store))?.pins ?? [];
      return {
        announced: latest
          ? {
              sequence: latest.sequence,
              pins,
              publishedAt: new Date(latest.publishedAt).toISOString(),
              publishedBy: latest.publishedBy,
            }
          : null,
        serving: serving(),
      };
    });
  };
}
