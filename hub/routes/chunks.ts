import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { ChunkError } from '../../shared/content/chunk-store.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError, uploadPackEntries } from './validate.js';
import { addRoute } from './register.js';

// One upload request: large enough that a publish is a handful of requests, small enough to retry whole.
export const CHUNK_UPLOAD_LIMIT = 64 * 1024 * 1024;
// The "which do you lack" question: 500,000 digests as JSON.
const MISSING_QUERY_LIMIT = 48 * 1024 * 1024;

/**
 * The shore side of chunk transfer from the publisher: which chunks the hub lacks (one request), and
 * uploads of many chunks per request, each verified against its digest before it is stored.
 */
export function chunkRoutes(deps: HubDeps): FastifyPluginAsync {
  return async (app) => {
    addRoute(
      app,
      ROUTES.chunksMissing,
      async (req) => ({ missing: await deps.store.chunks.missing([...new Set(req.body.digests)]) }),
      { bodyLimit: MISSING_QUERY_LIMIT },
    );

    addRoute(
      app,
      ROUTES.uploadChunks,
      async (req) => {
        const entries = uploadPackEntries(req.rawBody);
        let stored = 0;
        let present = 0;
        for (const e of entries) {
          if (await deps.store.chunks.has(e.digest)) {
            present++;
            continue;
          }
          try {
            // False when another upload stored it in the meantime.
            if (!(await deps.store.chunks.put(e.digest, e.compressed, e.rawSize))) {
              present++;
              continue;
            }
          } catch (err) {
            if (err instanceof ChunkError)
              throw new RequestValidationError(`${err.message}; ${stored} chunks before it were stored`);
            throw err;
          }
          stored++;
        }
        return { stored, present };
      },
      { bodyLimit: CHUNK_UPLOAD_LIMIT },
    );
  };
}
