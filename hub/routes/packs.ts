import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { vesselInScope } from '../auth.js';
import { ChunkError } from '../../shared/content/chunk-store.js';
import type { HubChunkStore } from '../store/hub-store.js';
import { downloadEntryBytes, encodeDownloadEntry } from '../../shared/protocol/pack.js';
import { HEADER, MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { RequestValidationError } from './validate.js';
import { addRoute } from './register.js';
import { parseRange } from './range.js';
import { packPlans, type PackPlans, type SolidGroup } from '../pack-plans.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { layerIndexRefs, namedChunks } from '../../shared/content/release-chunks.js';
import { deltaFormatFor, type DeltaFormat } from '../../shared/content/solid.js';

const headerValue = (h: string | string[] | undefined) => (Array.isArray(h) ? h.join(',') : h);

// A pack request names up to MAX_PACK_CHUNKS digests as JSON.
const PACK_REQUEST_LIMIT = 8 * 1024 * 1024;

/**
 * Packs for vessels: a vessel names the chunks it lacks (of a release targeted at it), the hub fixes that
 * list as a pack with a stable byte layout, and the vessel downloads it with Range requests, resuming at
 * the byte where a cut stopped it.
 */
export function packRoutes(deps: HubDeps): FastifyPluginAsync {
  const chunks = deps.store.chunks;
  const plans = packPlans(deps);

  return async (app) => {
    addRoute(
      app,
      ROUTES.createPack,
      async (req, reply) => {
        const { name } = req.params;
        const v = await vesselInScope(req, deps.store, name);
        const body = req.body;
        const release = await deps.store.releases.find(body.release);
        if (!release || !(await deps.store.rollouts.mayFetch(v.id, release.id)))
          return reply.code(404).send({ error: 'not_found', message: `no release ${body.release} for vessel ${name}` });
        // Under the root in force at publication: a release key rotated out since still serves its downloads.
        const allowed = await plans.releaseChunks(release.id);
        if (!allowed)
          return reply
            .code(409)
            .send({ error: 'incomplete', message: `the hub lacks a layer index of ${body.release}; publish it again` });
        const foreign = body.digests.find((d) => !allowed.has(d));
        if (foreign)
          throw new RequestValidationError(`chunk ${foreign.slice(0, 12)} is not part of release ${body.release}`);
        const sizes = await chunks.sizes(body.digests);
        const missingHere = body.digests.find((d) => !sizes.has(d));
        if (missingHere)
          return reply.code(409).send({
            error: 'incomplete',
            message: `the hub lacks chunk ${missingHere.slice(0, 12)} of ${body.release}; publish it again`,
          });
        const format = deltaFormatFor(headerValue(req.headers[HEADER.deltaFormats]));
        const ahead = headerValue(req.headers[HEADER.packAhead]) === 'groups';
        const entries = await packEntries(deps, release.id, body.digests, body.bases ?? [], format, ahead);
        const entrySizes = await chunks.sizes(entries);
        const digests = Buffer.concat(entries.map((d) => Buffer.from(d, 'hex')));
        // The id names the entries (the layout), not only the chunks: the same chunks asked for before and
        // after their solid groups were ready are two packs, each with stable bytes.
        const id = createHash('sha256').update(v.id).update(digests).digest('hex').slice(0, 32);
        const length = entries.reduce((a, d) => a + downloadEntryBytes(entrySizes.get(d)!), 0);
        await deps.store.packs.put({ id, vesselId: v.id, releaseId: release.id, digests: entries, length }, deps.now());
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
          return reply.send(Readable.from(packBytes(chunks, entries, 0, length)));
        }
        return reply.code(201).send({ id, length, etag: `"${id}"` });
      },
      { bodyLimit: PACK_REQUEST_LIMIT },
    );

    addRoute(app, ROUTES.getPack, async (req, reply) => {
      const p = req.params;
      const v = await vesselInScope(req, deps.store, p.name);
      const pack = await deps.store.packs.get(p.id, v.id);
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
      reply
        .header('etag', etag)
        .header('accept-ranges', 'bytes')
        .header('content-length', String(end - start + 1))
        .type(MEDIA.pack);
      return reply.send(Readable.from(packBytes(chunks, pack.digests, start, end + 1)));
    });
  };
}

/**
 * The entries of a pack for these chunks: a solid group wherever the vessel lacks all of its members, a
 * delta for a layer index it names a base for (when smaller), and the chunk itself for the rest, in the
 * order asked. Asked `ahead` with configs and layer indexes only, the solid groups it will need next
 * follow them. Every entry is a blob of the chunk store, so the pack's bytes are stable.
 */
async function packEntries(
  deps: HubDeps,
  releaseId: number,
  wanted: string[],
  bases: [string, string][],
  format: DeltaFormat,
  ahead: boolean,
): Promise<string[]> {
  const plans = packPlans(deps);
  const lacking = new Set(wanted);
  const out: string[] = [];
  const m = (await plans.manifest(releaseId))!;
  const named = namedChunks(m);
  // Configs and layer indexes (the first pack of a transfer) are never in a group: no wait for them,
  // unless the vessel asks for the groups to follow (then the wait is the one its content pack would have).
  const indexTier = wanted.every((d) => named.has(d));
  // Content ahead only for a vessel that asks for a layer index (a change of configs alone brings none).
  const layerIndexes = new Set(layerIndexRefs(m).map(([d]) => d));
  const withAhead = ahead && wanted.some((d) => layerIndexes.has(d));
  const groups = indexTier && !withAhead ? [] : await plans.ready(releaseId, deps.limits.PACK_PLAN_WAIT_MS);
  if (!indexTier)
    for (const g of groups) {
      if (!g.members.every((d) => lacking.has(d))) continue;
      out.push(g.digest);
      for (const d of g.members) lacking.delete(d);
    }
  const baseOf = new Map(bases.filter(([t]) => lacking.has(t)));
  for (const d of wanted) {
    if (!lacking.has(d)) continue;
    const base = baseOf.get(d);
    const delta = base ? await plans.delta(releaseId, d, base, format) : undefined;
    out.push(delta ?? d);
  }
  if (indexTier && withAhead && groups.length) {
    // What the hub cannot tell of the vessel's holding (a store error reading an index) costs the round
    // trip, not the pack: the content then comes in the next one.
    out.push(...(await aheadGroups(plans, m, lacking, baseOf, groups).catch(() => [])));
  }
  return out;
}

/**
 * The solid groups a vessel asking for these layer indexes will need: those with no member in a layer
 * index it holds (the release's indexes it does not ask for, and the bases it names). A chunk it holds
 * through some other layer is sent again inside a group: the price of not waiting a round trip for the
 * list of what it lacks, paid only where layers share content across slots.
 */
async function aheadGroups(
  plans: PackPlans,
  m: ReleaseManifest,
  asked: Set<string>,
  baseOf: Map<string, string>,
  groups: SolidGroup[],
): Promise<string[]> {
  // digest → its raw size when this release signs it (a base from an earlier release is looked up).
  const heldIndexes = new Map<string, number | undefined>([...baseOf.values()].map((d) => [d, undefined]));
  for (const [d, raw] of layerIndexRefs(m)) if (!asked.has(d)) heldIndexes.set(d, raw);
  const held: Set<string>[] = [];
  for (const [d, raw] of heldIndexes) {
    const chunksOf = await plans.indexChunks(m.app, d, raw);
    // An index the hub cannot read says nothing of what the vessel holds: no guess, no groups.
    if (!chunksOf) return [];
    held.push(chunksOf);
  }
  return groups.filter((g) => !g.members.some((c) => held.some((h) => h.has(c)))).map((g) => g.digest);
}

/**
 * The pack's bytes from `from` to `to` (exclusive), chunk by chunk, each entry read only as far as the
 * range needs it: a resume at any byte, through any hub process, yields the same bytes.
 */
async function* packBytes(chunks: HubChunkStore, digests: string[], from: number, to: number): AsyncGenerator<Buffer> {
  const sizes = await chunks.sizes(digests);
  let off = 0;
  for (const d of digests) {
    if (off >= to) return;
    const size = sizes.get(d);
    if (size === undefined) throw new ChunkError(`chunk ${d.slice(0, 12)} of the pack is no longer in the store`);
    const entryEnd = off + downloadEntryBytes(size);
    if (entryEnd > from) {
      const entry = encodeDownloadEntry(d, await chunks.read(d));
      yield entry.subarray(Math.max(0, from - off), Math.min(entry.byteLength, to - off));
    }
    off = entryEnd;
  }
}
