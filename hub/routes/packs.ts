import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { HubDeps } from '../app.js';
import { vesselInScope } from '../auth.js';
import { vesselNameSchema } from '../store/vessel-store.js';
import { verifyManifest } from '../store/release-store.js';
import { contentChunks, namedChunks } from '../../shared/content/release-chunks.js';
import { parseBody, RequestValidationError } from './validate.js';
import { PACK_MEDIA_TYPE } from '../../shared/content/chunk-store.js';

// Per pack entry: 32-byte digest + 4-byte compressed length, then the compressed chunk.
export const PACK_ENTRY_HEADER = 36;
// Chunks in one pack: a few large responses per release, each resumable at any byte.
const MAX_PACK_CHUNKS = 100_000;

/**
 * Packs for vessels: a vessel names the chunks it lacks (of a release targeted at it), the hub fixes that
 * list as a pack with a stable byte layout, and the vessel downloads it with Range requests, resuming at
 * the byte where a cut stopped it.
 */
export function packRoutes(deps: HubDeps): FastifyPluginAsync {
  const chunkSets = new Map<number, Set<string>>();
  const chunksOf = (releaseId: number): Set<string> | undefined => {
    let s = chunkSets.get(releaseId);
    if (!s) {
      const root = deps.roots.latest()!.root;
      const m = verifyManifest(root, deps.releases.envelope(releaseId)!);
      const content = contentChunks(m, deps.chunks);
      // Without every layer index the hub cannot tell which content chunks are the release's.
      if (content.missingIndexes.length) return undefined;
      s = new Set([...namedChunks(m).keys(), ...content.chunks.keys()]);
      if (chunkSets.size > 32) chunkSets.clear();
      chunkSets.set(releaseId, s);
    }
    return s;
  };
  const insert = deps.db.prepare(
    'INSERT OR IGNORE INTO packs (id, vessel_id, release_id, digests, length, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const get = deps.db.prepare<[string, string], { digests: Buffer; length: number }>(
    'SELECT digests, length FROM packs WHERE id = ? AND vessel_id = ?',
  );

  return async (app) => {
    app.post(
      '/api/v1/vessels/:name/packs',
      { config: { auth: { kind: 'vessel' } }, bodyLimit: 8 * 1024 * 1024 },
      async (req, reply) => {
        const { name } = parseBody(z.strictObject({ name: vesselNameSchema }), req.params, 'path');
        const v = vesselInScope(req, deps.vessels, name);
        const body = parseBody(
          z.strictObject({
            release: z.string().max(130),
            digests: z
              .array(z.string().regex(/^[0-9a-f]{64}$/))
              .min(1)
              .max(MAX_PACK_CHUNKS),
          }),
          req.body,
        );
        const release = deps.releases.find(body.release);
        if (!release || !deps.rollouts.mayFetch(v.id, release.id))
          return reply.code(404).send({ error: 'not_found', message: `no release ${body.release} for vessel ${name}` });
        const allowed = chunksOf(release.id);
        if (!allowed)
          return reply
            .code(409)
            .send({ error: 'incomplete', message: `the hub lacks a layer index of ${body.release}; publish it again` });
        const foreign = body.digests.find((d) => !allowed.has(d));
        if (foreign)
          throw new RequestValidationError(`chunk ${foreign.slice(0, 12)} is not part of release ${body.release}`);
        const missingHere = body.digests.find((d) => !deps.chunks.has(d));
        if (missingHere)
          return reply.code(409).send({
            error: 'incomplete',
            message: `the hub lacks chunk ${missingHere.slice(0, 12)} of ${body.release}; publish it again`,
          });
        const digests = Buffer.concat(body.digests.map((d) => Buffer.from(d, 'hex')));
        const id = createHash('sha256').update(v.id).update(digests).digest('hex').slice(0, 32);
        const length = body.digests.reduce((a, d) => a + PACK_ENTRY_HEADER + deps.chunks.size(d), 0);
        insert.run(id, v.id, release.id, digests, length, deps.now());
        // A vessel without a bandwidth cap asks for the bytes in the same round trip; a cut one resumes
        // with Range on GET .../packs/:id like any other.
        // Asked for in Accept, the creation answers with the pack's bytes instead of its id alone.
        if (req.headers.accept === PACK_MEDIA_TYPE) {
          reply
            .code(201)
            .header('tender-pack-id', id)
            .header('tender-pack-length', String(length))
            .header('etag', `"${id}"`)
            .header('content-length', String(length))
            .type(PACK_MEDIA_TYPE);
          return reply.send(Readable.from(packBytes(deps, body.digests, 0, length)));
        }
        return reply.code(201).send({ id, length, etag: `"${id}"` });
      },
    );

    app.get(
      '/api/v1/vessels/:name/packs/:id',
      { config: { auth: { kind: 'vessel-or-ops', role: 'viewer' } } },
      async (req, reply) => {
        const p = parseBody(
          z.strictObject({ name: vesselNameSchema, id: z.string().regex(/^[0-9a-f]{32}$/) }),
          req.params,
          'path',
        );
        const v = vesselInScope(req, deps.vessels, p.name);
        const pack = get.get(p.id, v.id);
        if (!pack) return reply.code(404).send({ error: 'not_found', message: `no pack ${p.id}` });
        const etag = `"${p.id}"`;
        let start = 0;
        let end = pack.length - 1;
        const range = req.headers.range;
        const ifRange = req.headers['if-range'];
        if (range && (!ifRange || ifRange === etag)) {
          const m = /^bytes=(\d+)-(\d*)$/.exec(range);
          if (!m || Number(m[1]) >= pack.length) {
            return reply
              .code(416)
              .header('content-range', `bytes */${pack.length}`)
              .send({ error: 'range_not_satisfiable', message: `pack is ${pack.length} bytes` });
          }
          start = Number(m[1]);
          end = m[2] ? Math.min(Number(m[2]), pack.length - 1) : pack.length - 1;
          reply.code(206).header('content-range', `bytes ${start}-${end}/${pack.length}`);
        }
        const digests: string[] = [];
        for (let i = 0; i < pack.digests.byteLength; i += 32)
          digests.push(pack.digests.subarray(i, i + 32).toString('hex'));
        reply
          .header('etag', etag)
          .header('accept-ranges', 'bytes')
          .header('content-length', String(end - start + 1))
          .type('application/octet-stream');
        return reply.send(Readable.from(packBytes(deps, digests, start, end + 1)));
      },
    );
  };
}

/** The pack's bytes from `from` to `to` (exclusive), read chunk by chunk. */
function* packBytes(deps: HubDeps, digests: string[], from: number, to: number): Generator<Buffer> {
  let off = 0;
  for (const d of digests) {
    if (off >= to) return;
    const size = deps.chunks.size(d);
    const entryEnd = off + PACK_ENTRY_HEADER + size;
    if (entryEnd > from) {
      const h = Buffer.alloc(PACK_ENTRY_HEADER);
      Buffer.from(d, 'hex').copy(h, 0);
      h.writeUInt32BE(size, 32);
      const entry = Buffer.concat([h, deps.chunks.get(d)]);
      yield entry.subarray(Math.max(0, from - off), Math.min(entry.byteLength, to - off));
    }
    off = entryEnd;
  }
}
