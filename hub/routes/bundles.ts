import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { releaseChunkOrder } from '../../shared/content/release-chunks.js';
import { BundleEncoder } from '../../shared/protocol/bundle.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { audit } from '../audit.js';
import { addRoute } from './register.js';

/**
 * Release bundles for a USB stick (`tender bundle export`): the signed manifest and the release's chunks,
 * streamed as one file. For a vessel, the chunks of the releases it last reported (current and previous)
 * are left out: what the hub knows it holds. The vessel checks everything again on import.
 */
export function bundleRoutes(deps: HubDeps): FastifyPluginAsync {
  const manifestOf = (id: number): { m: ReleaseManifest; bytes: Buffer } => {
    const bytes = deps.releases.envelope(id)!;
    return { m: verifyManifest(deps.roots.latest()!.root, bytes), bytes };
  };
  /** Chunks of the releases a vessel reported running or kept, as far as the hub still has them. */
  const heldBy = (app: string, status: unknown): Set<string> => {
    const held = new Set<string>();
    const s = (status ?? {}) as { current?: unknown; previous?: unknown };
    for (const v of [s.current, s.previous]) {
      if (typeof v !== 'string') continue;
      const r = deps.releases.find(v.includes('@') ? v : `${app}@${v}`);
      if (!r) continue;
      for (const d of releaseChunkOrder(manifestOf(r.id).m, deps.chunks) ?? []) held.add(d);
    }
    return held;
  };

  return async (app) => {
    addRoute(app, ROUTES.exportBundle, async (req, reply) => {
      const release = deps.releases.find(req.params.release);
      if (!release) return reply.code(404).send({ error: 'not_found', message: `no release ${req.params.release}` });
      const forName = req.query.for;
      const vessel = forName ? deps.vessels.getByName(forName) : undefined;
      if (forName && !vessel) return reply.code(404).send({ error: 'not_found', message: `no vessel ${forName}` });
      const { m, bytes } = manifestOf(release.id);
      const order = releaseChunkOrder(m, deps.chunks);
      const missing = order?.find((d) => !deps.chunks.has(d));
      if (!order || missing)
        return reply.code(409).send({
          error: 'incomplete',
          message: `the hub lacks ${missing ? `chunk ${missing.slice(0, 12)}` : 'a layer index'} of ${m.app}@${m.version}; publish it again`,
        });
      const held = vessel ? heldBy(m.app, vessel.status) : new Set<string>();
      const digests = order.filter((d) => !held.has(d));
      audit(deps, req.principal, 'bundle.export', {
        app: m.app,
        version: m.version,
        for: forName ?? null,
        chunks: digests.length,
      });
      const header = {
        format: 1 as const,
        app: m.app,
        version: m.version,
        sequence: m.sequence,
        for: forName ?? null,
        createdAt: new Date(deps.now()).toISOString(),
      };
      reply
        .header('content-disposition', `attachment; filename="${m.app}-${m.version}.tender-bundle"`)
        .type(MEDIA.bundle);
      return reply.send(Readable.from(bundleBytes(deps, header, bytes, digests)));
    });
  };
}

function* bundleBytes(
  deps: HubDeps,
  header: Parameters<BundleEncoder['start']>[0],
  manifest: Buffer,
  digests: string[],
): Generator<Buffer> {
  const enc = new BundleEncoder();
  yield enc.start(header, manifest);
  for (const d of digests) yield enc.chunk(d, deps.chunks.get(d));
  yield enc.end();
}
