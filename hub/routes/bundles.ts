import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { HubChunkStore, StoredRelease } from '../store/hub-store.js';
import { releaseChunkOrder } from '../release-chunks.js';
import { storedManifest } from '../releases.js';
import { BundleEncoder } from '../../shared/protocol/bundle.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { auditEntry } from '../audit.js';
import { addRoute } from './register.js';

/**
 * Release bundles for a USB stick (`tender bundle export`): the signed manifest and the release's chunks,
 * streamed as one file. For a vessel, the chunks of the releases it last reported (current and previous)
 * are left out: what the hub knows it holds. The vessel checks everything again on import.
 */
export function bundleRoutes(deps: HubDeps): FastifyPluginAsync {
  const chunks = deps.store.chunks;
  // Under the root in force at publication, as packs are (hub/releases.ts storedManifest).
  const manifestOf = (r: StoredRelease): Promise<{ m: ReleaseManifest; bytes: Buffer }> =>
    storedManifest(deps.store, r);
  /** Chunks of the releases a vessel reported running or kept, as far as the hub still has them. */
  const heldBy = async (app: string, status: unknown): Promise<Set<string>> => {
    const held = new Set<string>();
    const s = (status ?? {}) as { current?: unknown; previous?: unknown };
    for (const v of [s.current, s.previous]) {
      if (typeof v !== 'string') continue;
      const r = await deps.store.releases.find(v.includes('@') ? v : `${app}@${v}`);
      if (!r) continue;
      for (const d of (await releaseChunkOrder((await manifestOf(r)).m, chunks)) ?? []) held.add(d);
    }
    return held;
  };

  return async (app) => {
    addRoute(app, ROUTES.exportBundle, async (req, reply) => {
      const release = await deps.store.releases.find(req.params.release);
      if (!release) return reply.code(404).send({ error: 'not_found', message: `no release ${req.params.release}` });
      const forName = req.query.for;
      const vessel = forName ? await deps.store.vessels.getByName(forName) : undefined;
      if (forName && !vessel) return reply.code(404).send({ error: 'not_found', message: `no vessel ${forName}` });
      const { m, bytes } = await manifestOf(release);
      const order = await releaseChunkOrder(m, chunks);
      const absent = order ? await chunks.missing(order) : [];
      const missing = absent[0];
      if (!order || missing)
        return reply.code(409).send({
          error: 'incomplete',
          message:
            `the hub lacks ${missing ? `chunk ${missing.slice(0, 12)}` : 'a layer index'} of ` +
            `${m.app}@${m.version}; publish it again`,
        });
      const held = vessel ? await heldBy(m.app, vessel.status) : new Set<string>();
      const digests = order.filter((d) => !held.has(d));
      await deps.store.audit.append(
        auditEntry(req.principal, 'bundle.export', {
          app: m.app,
          version: m.version,
          for: forName ?? null,
          chunks: digests.length,
        }),
        deps.now(),
      );
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
      return reply.send(Readable.from(bundleBytes(chunks, header, bytes, digests)));
    });
  };
}

async function* bundleBytes(
  chunks: HubChunkStore,
  header: Parameters<BundleEncoder['start']>[0],
  manifest: Buffer,
  digests: string[],
): AsyncGenerator<Buffer> {
  const enc = new BundleEncoder();
  yield enc.start(header, manifest);
  for (const d of digests) yield enc.chunk(d, await chunks.read(d));
  yield enc.end();
}
