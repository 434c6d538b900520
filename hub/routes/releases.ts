import { createHash } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { vesselInScope } from '../auth.js';
import { MAX_MANIFEST_BYTES } from '../../shared/protocol/manifest.js';
import { vesselNameSchema } from '../store/vessel-store.js';
import { releaseVersionSchema } from '../../shared/protocol/manifest.js';
import { parseBody, RequestValidationError } from './validate.js';
import { audit } from '../audit.js';

const releaseRef = z
  .string()
  .regex(/^([a-z0-9][a-z0-9_-]{0,62}@)?[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/, 'must be VERSION or APP@VERSION');

export function releaseRoutes(deps: HubDeps): FastifyPluginAsync {
  const actor = (p: unknown) => {
    const o = p as { kind: string; name?: string };
    return o?.kind === 'ops' ? `ops:${o.name}` : 'unknown';
  };
  return async (app) => {
    app.put(
      '/api/v1/releases',
      { config: { auth: { kind: 'ops', role: 'operator' } }, bodyLimit: MAX_MANIFEST_BYTES },
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
    );

    app.get('/api/v1/releases', { config: { auth: { kind: 'ops', role: 'viewer' } } }, async () => ({
      releases: deps.releases.list(),
    }));

    app.get('/api/v1/releases/next-sequence', { config: { auth: { kind: 'ops', role: 'operator' } } }, async (req) => {
      const { app: appName } = parseBody(
        z.strictObject({ app: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/) }),
        req.query,
        'query',
      );
      return { app: appName, sequence: deps.releases.nextSequence(appName) };
    });

    app.post('/api/v1/rollouts', { config: { auth: { kind: 'ops', role: 'operator' } } }, async (req, reply) => {
      const body = parseBody(
        z.strictObject({
          release: releaseRef,
          target: z.string().max(80),
          waves: z.array(z.number().int()).optional(),
          maxFailuresPercent: z.number().int().optional(),
        }),
        req.body,
      );
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

    app.get('/api/v1/rollouts', { config: { auth: { kind: 'ops', role: 'viewer' } } }, async () => ({
      rollouts: deps.rollouts.list(),
    }));

    app.get(
      '/api/v1/vessels/:name/releases/:version',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req, reply) => {
        const p = parseBody(
          z.strictObject({
            name: vesselNameSchema,
            version: z
              .string()
              .regex(/^[a-z0-9][a-z0-9_-]{0,62}@/)
              .pipe(z.string()),
          }),
          req.params,
          'path',
        );
        const v = vesselInScope(req, deps.vessels, p.name);
        const at = p.version.indexOf('@');
        releaseVersionSchema.parse(p.version.slice(at + 1));
        const release = deps.releases.find(p.version);
        // A vessel sees only releases that were targeted at it; anything else does not exist for it.
        if (!release || (req.principal?.kind === 'vessel' && !deps.rollouts.mayFetch(v.id, release.id))) {
          return reply.code(404).send({ error: 'not_found', message: `no release ${p.version} for vessel ${p.name}` });
        }
        // Manifests can be megabytes: a cut download resumes with Range, validated by a stable ETag.
        const bytes = deps.releases.envelope(release.id)!;
        const etag = `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;
        reply
          .type('application/vnd.tender.envelope+json')
          .header('cache-control', 'private, max-age=31536000, immutable')
          .header('etag', etag)
          .header('accept-ranges', 'bytes');
        const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
          const start = Number(range[1]);
          if (start >= bytes.byteLength)
            return reply
              .code(416)
              .header('content-range', `bytes */${bytes.byteLength}`)
              .send({ error: 'range_not_satisfiable', message: `manifest is ${bytes.byteLength} bytes` });
          return reply
            .code(206)
            .header('content-range', `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}`)
            .send(bytes.subarray(start));
        }
        return reply.send(bytes);
      },
    );
  };
}
