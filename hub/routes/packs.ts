import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import { verifyManifest } from '../../shared/protocol/manifest.js';
import { contentChunks, namedChunks } from '../../shared/content/release-chunks.js';
import { downloadEntryBytes, encodeDownloadEntry } from '../../shared/protocol/pack.js';
import { HEADER, MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { parseRange } from './range.js';

// A pack request names up to MAX_PACK_CHUNKS digests as JSON.
const PACK_REQUEST_LIMIT = 8 * 1024 * 1024;

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
    addRoute(
      app,
      ROUTES.createPack,
      async (req, reply) => {
        const { name } = req.params;
        const v = vesselInScope(req, deps.vessels, name);
        const body = req.body;
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
        const length = body.digests.reduce((a, d) => a + downloadEntryBytes(deps.chunks.size(d)), 0);
        insert.run(id, v.id, release.id, digests, length, deps.now());
        // A vessel without a bandwidth cap asks for the bytes in the same round trip; a cut one resumes
        // with Range on GET .../packs/:id like any other.
        // Asked for in Accept, the creation answers with the pack's bytes instead of its id alone.
        if (req.headers.accept === MEDIA.pack) {
          reply
            .code(201)
            .header(HEADER.packId, id)
            .header(HEADER.packLength, String(length))
            .header('etag', `"${id}"`)
            .header('content-length', String(length))
            .type(MEDIA.pack);
          return reply.send(Readable.from(packBytes(deps, body.digests, 0, length)));
        }
        return reply.code(201).send({ id, length, etag: `"${id}"` });
      },
      { bodyLimit: PACK_REQUEST_LIMIT },
    );

    addRoute(app, ROUTES.getPack, async (req, reply) => {
      const p = req.params;
      const v = vesselInScope(req, deps.vessels, p.name);
      const pack = get.get(p.id, v.id);
      if (!pack) return reply.code(404).send({ error: 'not_found', message: `no pack ${p.id}` });
      const etag = `"${p.id}"`;
      let start = 0;
      let end = pack.length - 1;
      const range = req.headers.range;
      const ifRange = req.headers['if-range'];
      if (range && (!ifRange || ifRange === etag)) {
        const r = parseRange(range, pack.length);
        if ('unsatisfiable' in r) {
          return reply
            .code(416)
            .header('content-range', `bytes */${pack.length}`)
            .send({ error: 'range_not_satisfiable', message: `${r.unsatisfiable}; pack is ${pack.length} bytes` });
        }
        ({ start, end } = r);
        reply.code(206).header('content-range', `bytes ${start}-${end}/${pack.length}`);
      }
      const digests: string[] = [];
      for (let i = 0; i < pack.digests.byteLength; i += 32)
        digests.push(pack.digests.subarray(i, i + 32).toString('hex'));
      reply
        .header('etag', etag)
        .header('accept-ranges', 'bytes')
        .header('content-length', String(end - start + 1))
        .type(MEDIA.pack);
      return reply.send(Readable.from(packBytes(deps, digests, start, end + 1)));
    });
  };
}

/** The pack's bytes from `from` to `to` (exclusive), read chunk by chunk. */
function* packBytes(deps: HubDeps, digests: string[], from: number, to: number): Generator<Buffer> {
  let off = 0;
  for (const d of digests) {
    if (off >= to) return;
    const entryEnd = off + downloadEntryBytes(deps.chunks.size(d));
    if (entryEnd > from) {
      const entry = encodeDownloadEntry(d, deps.chunks.get(d));
      yield entry.subarray(Math.max(0, from - off), Math.min(entry.byteLength, to - off));
    }
    off = entryEnd;
  }
}
