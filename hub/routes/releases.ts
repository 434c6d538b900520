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
import { auditEntry } from '../audit.js';
import { publishRelease, storedManifest } from '../releases.js';
import { hostAccessLines } from '../../shared/protocol/release-spec.js';
import type { StoredRelease } from '../store/hub-store.js';
import { packPlans } from '../pack-plans.js';

export function releaseRoutes(deps: HubDeps): FastifyPluginAsync {
  const actor = (p: unknown) => {
    const o = p as { kind: string; name?: string };
    return o?.kind === 'ops' ? `ops:${o.name}` : 'unknown';
  };
  return async (app) => {
    // A stored manifest never changes: what it may touch on the host is worked out once per release.
    const hostAccessCache = new Map<number, string[] | undefined>();
    const releaseHostAccess = async (r: StoredRelease): Promise<string[] | undefined> => {
      if (!hostAccessCache.has(r.id)) {
        let lines: string[] | undefined;
        try {
          lines = hostAccessLines((await storedManifest(deps.store, r)).m.services);
        } catch (err) {
          // Listed anyway (the publish checked it); unknown is not the same as none.
          app.log.warn(
            { release: `${r.app}@${r.version}`, err: (err as Error).message },
            'stored manifest did not verify',
          );
        }
        if (hostAccessCache.size > 1000) hostAccessCache.clear();
        hostAccessCache.set(r.id, lines);
      }
      return hostAccessCache.get(r.id);
    };

    addRoute(
      app,
      ROUTES.publishRelease,
      async (req, reply) => {
        if (!req.rawBody) throw new RequestValidationError('body: a signed release manifest is required');
        const now = deps.now();
        const { release, created } = await publishRelease(deps.store, req.rawBody, actor(req.principal), now);
        // Only a release that is new is audited (a retried publish that changed nothing is not).
        if (created)
          await deps.store.audit.append(
            auditEntry(req.principal, 'release.publish', {
              app: release.app,
              version: release.version,
              sequence: release.sequence,
            }),
            now,
          );
        // The solid groups a vessel holding an earlier release will be sent: the publish waits for them a
        // while (most are ready by then), the rest is computed in the background.
        await packPlans(deps).ready(release.id, deps.limits.PUBLISH_PLAN_WAIT_MS);
        return reply.code(created ? 201 : 200).send({ ...release, created });
      },
      { bodyLimit: MAX_MANIFEST_BYTES },
    );

    // Each with what it may touch on the host, read from its manifest (verified as packs are).
    addRoute(app, ROUTES.listReleases, async () => {
      const list = await deps.store.releases.list({ limit: 200 });
      const releases = [];
      for (const r of list) releases.push({ ...r, hostAccess: await releaseHostAccess(r) });
      return { releases };
    });

    addRoute(app, ROUTES.nextSequence, async (req) => ({
      app: req.query.app,
      sequence: await deps.store.releases.nextSequence(req.query.app),
    }));

    addRoute(app, ROUTES.getManifest, async (req, reply) => {
      const p = req.params;
      const v = await vesselInScope(req, deps.store, p.name);
      const release = await deps.store.releases.find(p.version);
      // A vessel sees only releases that were targeted at it; anything else does not exist for it.
      if (!release || (req.principal?.kind === 'vessel' && !(await deps.store.rollouts.mayFetch(v.id, release.id)))) {
        return reply.code(404).send({ error: 'not_found', message: `no release ${p.version} for vessel ${p.name}` });
      }
      // Manifests can be megabytes: a cut download resumes with Range, validated by a stable ETag.
      const bytes = (await deps.store.releases.envelope(release.id))!;
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
