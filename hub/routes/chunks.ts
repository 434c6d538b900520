import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { parseUploadPack, ChunkError } from '../../shared/content/chunk-store.js';
import { parseBody, RequestValidationError } from './validate.js';

// One upload request: large enough that a publish is a handful of requests, small enough to retry whole.
export const CHUNK_UPLOAD_LIMIT = 64 * 1024 * 1024;
// Digests in one "which do you lack" question: a multi-gigabyte image set at 16 KB chunks.
const MAX_DIGESTS_PER_QUERY = 500_000;

export const PACK_CONTENT_TYPE = 'application/vnd.tender.pack';

/**
 * The shore side of chunk transfer from the publisher: which chunks the hub lacks (one request), and
 * uploads of many chunks per request, each verified against its digest before it is stored.
 */
export function chunkRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    app.post(
      '/api/v1/chunks/missing',
      { config: { auth: { kind: 'ops', role: 'operator' } }, bodyLimit: 48 * 1024 * 1024 },
      async (req) => {
        const { digests } = parseBody(
          z.strictObject({ digests: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(MAX_DIGESTS_PER_QUERY) }),
          req.body,
        );
        return { missing: [...new Set(digests)].filter((d) => !deps.chunks.has(d)) };
      },
    );

    app.post(
      '/api/v1/chunks',
      { config: { auth: { kind: 'ops', role: 'operator' } }, bodyLimit: CHUNK_UPLOAD_LIMIT },
      async (req) => {
        if (!req.rawBody) throw new RequestValidationError('body: a chunk pack is required');
        let entries;
        try {
          entries = parseUploadPack(req.rawBody);
        } catch (err) {
          throw new RequestValidationError((err as Error).message);
        }
        let stored = 0;
        let present = 0;
        for (const e of entries) {
          if (deps.chunks.has(e.digest)) {
            present++;
            continue;
          }
          try {
            deps.chunks.put(e.digest, e.compressed, e.rawSize);
          } catch (err) {
            if (err instanceof ChunkError)
              throw new RequestValidationError(`${err.message}; ${stored} chunks before it were stored`);
            throw err;
          }
          stored++;
        }
        return { stored, present };
      },
    );
  };
}
