import { createHash } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import { MAX_MANIFEST_BYTES } from '../../shared/protocol/manifest.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { parseRange } from './range.js';
import { audit } from '../audit.js';

export function releaseRoutes(deps: HubDeps): FastifyPluginAsync {
  const actor = (p: unknown) => {
    const o = p as { kind: string; name?: string };
    return o?.kind === 'ops' ? `ops:${o.name}` : 'unknown';
  };
  return async (app) => {
    addRoute(
      app,
      ROUTES.publishRelease,
      async (req, reply) => {
        if (!req.rawBody) throw new RequestValidationError('body: a signed release manifest is required');
        const latest = deps.roots.latest();
        if (!latest) throw new RequestValidationError('the hub has no root document yet');
        const { release, created } = deps.releases.add(latest.root, req.rawBody, actor(req.principal), deps.now());
        if (created)
          audit(deps, req.principal, 'release.publish', {
            app: release.app,
            version: release.version,
            sequence: release.sequence,
          });
        return reply.code(created ? 201 : 200).send({ ...release, created });
      },
      { bodyLimit: MAX_MANIFEST_BYTES },
    );

    addRoute(app, ROUTES.listReleases, async () => ({ releases: deps.releases.list() }));

    addRoute(app, ROUTES.nextSequence, async (req) => ({
      app: req.query.app,
      sequence: deps.releases.nextSequence(req.query.app),
    }));

    addRoute(app, ROUTES.startRollout, async (req, reply) => {
      const body = req.body;
      if (body.waves !== undefined || body.maxFailuresPercent !== undefined) {
        throw new RequestValidationError(
          'waves and failure thresholds are not implemented yet; start the rollout without them',
        );
      }
      const release = deps.releases.find(body.release);
      if (!release) return reply.code(404).send({ error: 'not_found', message: `no release ${body.release}` });
      const r = deps.rollouts.start(release, body.target, actor(req.principal), deps.now());
      audit(deps, req.principal, 'rollout.start', {
        id: r.id,
        release: `${release.app}@${release.version}`,
        target: body.target,
        vessels: r.vessels.length,
      });
      return reply.code(201).send({
        id: r.id,
        release: { app: release.app, version: release.version, sequence: release.sequence },
        target: body.target,
        vessels: r.vessels,
      });
    });

    addRoute(app, ROUTES.listRollouts, async () => ({ rollouts: deps.rollouts.list() }));

    addRoute(app, ROUTES.getManifest, async (req, reply) => {
      const p = req.params;
      const v = vesselInScope(req, deps.vessels, p.name);
      const release = deps.releases.find(p.version);
      // A vessel sees only releases that were targeted at it; anything else does not exist for it.
      if (!release || (req.principal?.kind === 'vessel' && !deps.rollouts.mayFetch(v.id, release.id))) {
        return reply.code(404).send({ error: 'not_found', message: `no release ${p.version} for vessel ${p.name}` });
      }
      // Manifests can be megabytes: a cut download resumes with Range, validated by a stable ETag.
      const bytes = deps.releases.envelope(release.id)!;
      const etag = `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;
      reply
        .type(MEDIA.envelope)
        .header('cache-control', 'private, max-age=31536000, immutable')
        .header('etag', etag)
        .header('accept-ranges', 'bytes');
      const range = req.headers.range;
      if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
        const r = parseRange(range, bytes.byteLength);
        if ('unsatisfiable' in r)
          return reply
            .code(416)
            .header('content-range', `bytes */${bytes.byteLength}`)
            .send({
              error: 'range_not_satisfiable',
              message: `${r.unsatisfiable}; manifest is ${bytes.byteLength} bytes`,
            });
        return reply
          .code(206)
          .header('content-range', `bytes ${r.start}-${r.end}/${bytes.byteLength}`)
          .send(bytes.subarray(r.start, r.end + 1));
      }
      return reply.send(bytes);
    });
  };
}
