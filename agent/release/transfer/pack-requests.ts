import { z } from 'zod';
import { TenderError } from '../../../shared/errors.js';
import { PACK_MEDIA_TYPE } from '../../../shared/content/chunk-store.js';
import type { ReleaseManifest } from '../../../shared/protocol/manifest.js';
import { expectOk, type HubClient } from '../../hub-client.js';
import { maxPackLength } from './pack-decoder.js';
import type { PackHandle, PackState } from './pack-state.js';

/** The hub refused to make a pack (a 4xx/5xx, not a cut), or declared one it cannot be: not retried. */
export class FetchRefused extends TenderError {}
/** The hub's answer to a range request of a pack under way cannot be used: the range is asked again. */
export class PackRangeError extends TenderError {}

type ReleaseRef = Pick<ReleaseManifest, 'app' | 'version'>;

const PACK_ID = /^[0-9a-f]{32}$/;
const packHandleSchema = z.strictObject({ id: z.string().regex(PACK_ID), length: z.number().int(), etag: z.string() });

/** The hub side of a transfer: which vessel asks, and a count of the requests made. */
export interface PackHub {
  client: HubClient;
  vesselName: string;
  stats: { requests: number };
}

const packsPath = (hub: PackHub) => `/api/v1/vessels/${encodeURIComponent(hub.vesselName)}/packs`;

/** A pack cannot be longer than its chunks can encode to: a hub that declares more is not believed. */
function checkPackLength(length: number, digests: string[], sizes: Map<string, number>): void {
  const max = maxPackLength(digests, sizes);
  if (length < 0 || length > max)
    throw new FetchRefused(`hub declared a pack of ${length} bytes for chunks that fit in ${max}`);
}

/** Fix a pack on the hub (its id and length), to be fetched with paced range requests. */
export async function createPack(
  hub: PackHub,
  m: ReleaseRef,
  digests: string[],
  sizes: Map<string, number>,
): Promise<PackHandle> {
  const res = await hub.client.request('POST', packsPath(hub), { body: { release: `${m.app}@${m.version}`, digests } });
  hub.stats.requests++;
  const p = packHandleSchema.parse(JSON.parse(expectOk(res, 'pack').body.toString()));
  checkPackLength(p.length, digests, sizes);
  return p;
}

/** Fix a pack and open its bytes in the same round trip; the pack's id and length come in headers. */
export async function openNewPack(
  hub: PackHub,
  m: ReleaseRef,
  digests: string[],
  sizes: Map<string, number>,
  signal: AbortSignal,
): Promise<{ res: Response; pack: PackHandle }> {
  const res = await hub.client.stream(packsPath(hub), { accept: PACK_MEDIA_TYPE }, signal, {
    release: `${m.app}@${m.version}`,
    digests,
  });
  hub.stats.requests++;
  if (res.status !== 201)
    throw new FetchRefused(
      `pack for ${m.version}: hub answered ${res.status}: ${(await res.text().catch(() => '')).slice(0, 200)}`,
    );
  const id = res.headers.get('tender-pack-id') ?? '';
  const length = Number(res.headers.get('tender-pack-length') ?? NaN);
  if (!PACK_ID.test(id) || !Number.isSafeInteger(length))
    throw new FetchRefused('hub answered a pack without its id or length');
  checkPackLength(length, digests, sizes);
  return { res, pack: { id, length, etag: res.headers.get('etag') ?? `"${id}"` } };
}

/** Open bytes offset..last of a pack under way; If-Range, so a pack changed on the hub is not spliced. */
export async function openPackRange(
  hub: PackHub,
  state: PackState,
  offset: number,
  last: number,
  signal: AbortSignal,
): Promise<Response> {
  const res = await hub.client.stream(
    `${packsPath(hub)}/${state.id}`,
    { range: `bytes=${offset}-${last}`, 'if-range': state.etag },
    signal,
  );
  hub.stats.requests++;
  if (res.status === 200 && offset > 0)
    throw new PackRangeError(`pack ${state.id} changed on the hub (no 206); starting it again`);
  if (res.status !== 206 && res.status !== 200)
    throw new PackRangeError(`pack ${state.id}: hub answered ${res.status}`);
  return res;
}
