import { TenderError } from '../../../shared/errors.js';
import type { ReleaseManifest } from '../../../shared/protocol/manifest.js';
import { packHeaders, type HubClient, type PackAsk } from '../../hub-client.js';
import { maxPackLength } from './pack-decoder.js';
import type { PackHandle, PackState } from './pack-state.js';

/** The hub refused to make a pack (a 4xx/5xx, not a cut), or declared one it cannot be: not retried. */
export class FetchRefused extends TenderError {}
/** The hub's answer to a range request of a pack under way cannot be used: the range is asked again. */
export class PackRangeError extends TenderError {}

type ReleaseRef = Pick<ReleaseManifest, 'app' | 'version'>;

/** The hub side of a transfer: which vessel asks, and a count of the requests made. */
export interface PackHub {
  client: HubClient;
  vesselName: string;
  stats: { requests: number };
}

/** A pack request: what it carries besides the chunks, and the most the content asked ahead can take. */
export interface PackRequest extends PackAsk {
  /** Bytes the solid groups asked ahead may add to the pack (0 when none are asked). */
  aheadBytes?: number;
}

/** A pack cannot be longer than its chunks can encode to: a hub that declares more is not believed. */
function checkPackLength(length: number, digests: string[], sizes: Map<string, number>, ask: PackRequest): void {
  const max = maxPackLength(digests, sizes) + (ask.ahead ? (ask.aheadBytes ?? 0) : 0);
  if (length < 0 || length > max)
    throw new FetchRefused(`hub declared a pack of ${length} bytes for chunks that fit in ${max}`);
}

/** Fix a pack on the hub (its id and length), to be fetched with paced range requests. */
export async function createPack(
  hub: PackHub,
  m: ReleaseRef,
  digests: string[],
  sizes: Map<string, number>,
  ask: PackRequest = {},
): Promise<PackHandle> {
  const p = await hub.client.createPack(hub.vesselName, `${m.app}@${m.version}`, digests, ask);
  hub.stats.requests++;
  checkPackLength(p.length, digests, sizes, ask);
  return p;
}

/** Fix a pack and open its bytes in the same round trip; the pack's id and length come in headers. */
export async function openNewPack(
  hub: PackHub,
  m: ReleaseRef,
  digests: string[],
  sizes: Map<string, number>,
  signal: AbortSignal,
  ask: PackRequest = {},
): Promise<{ res: Response; pack: PackHandle }> {
  const res = await hub.client.createAndOpenPack(hub.vesselName, `${m.app}@${m.version}`, digests, signal, ask);
  hub.stats.requests++;
  if (res.status !== 201)
    throw new FetchRefused(
      `pack for ${m.version}: hub answered ${res.status}: ${(await res.text().catch(() => '')).slice(0, 200)}`,
    );
  const pack = packHeaders(res);
  if (!pack) throw new FetchRefused('hub answered a pack without its id or length');
  checkPackLength(pack.length, digests, sizes, ask);
  return { res, pack };
}

/** Open bytes offset..last of a pack under way; If-Range, so a pack changed on the hub is not spliced. */
export async function openPackRange(
  hub: PackHub,
  state: PackState,
  offset: number,
  last: number,
  signal: AbortSignal,
): Promise<Response> {
  const res = await hub.client.openPack(hub.vesselName, state.id, { first: offset, last, etag: state.etag }, signal);
  hub.stats.requests++;
  if (res.status === 200 && offset > 0)
    throw new PackRangeError(`pack ${state.id} changed on the hub (no 206); starting it again`);
  if (res.status !== 206 && res.status !== 200)
    throw new PackRangeError(`pack ${state.id}: hub answered ${res.status}`);
  return res;
}
