import { DOWNLOAD_ENTRY_HEADER_BYTES } from '../../../shared/protocol/pack.js';
import type { PackState } from './pack-state.js';

// A few large packs per release: each costs one round trip to create and one to start downloading.
// Counted in raw bytes (the compressed size of content chunks is the hub's to know): ~40 MB on the wire.
const PACK_MAX_BYTES = 128 * 1024 * 1024;

export interface PackPlan {
  /** Packs already under way for these chunks (their files say how far they got): resumed first. */
  resumed: PackState[];
  /** The rest of the missing chunks, in groups of about PACK_MAX_BYTES: one new pack each. */
  groups: string[][];
}

/**
 * Plan the packs that bring `missing` (chunks of one tier, sized in `sizes`) on board, given the packs
 * under way on disk. Only packs of this release holding chunks of this tier are resumed (a later tier's
 * pack waits its turn), and a pack asked with the content ahead counts as holding content too: cut after
 * its indexes landed, it is resumed at its byte, not asked for again. Pure: the fetch loop carries the
 * plan out.
 */
export function planPacks(
  underWay: PackState[],
  release: string,
  missing: string[],
  sizes: Map<string, number>,
): PackPlan {
  const resumed = underWay.filter(
    (p) => p.release === release && (p.digests.some((d) => sizes.has(d)) || p.ahead === true),
  );
  const covered = new Set(resumed.flatMap((p) => p.digests));
  let group: string[] = [];
  let bytes = 0;
  const groups: string[][] = [];
  for (const d of missing) {
    if (covered.has(d)) continue;
    group.push(d);
    bytes += sizes.get(d)! + DOWNLOAD_ENTRY_HEADER_BYTES;
    if (bytes >= PACK_MAX_BYTES) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
  }
  if (group.length) groups.push(group);
  return { resumed, groups };
}
