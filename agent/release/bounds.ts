import { TenderError } from '../../shared/errors.js';
import { MAX_RELEASE_SEQUENCE, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { StateStore } from '../state-store.js';

/**
 * Bounds on what one signed manifest may move (ATTACKS.md 36): a sequence far past the app's newest would
 * freeze every later release of it, a creation time far ahead would lift the vessel's trusted time until
 * every later install fails as expired. Refused, so a bad document never blocks the valid ones after it.
 */
export class ManifestBoundsError extends TenderError {}

// Releases a vessel may skip at once: years of daily releases while at sea, far below the hub's sequence space.
export const MAX_SEQUENCE_STEP = 1_000_000;
// How far ahead of the corrected clock a manifest's creation time may be: clocks on a CI runner drift, by
// seconds, not by a day.
export const MAX_CREATED_AHEAD_MS = 24 * 3600 * 1000;

export function checkManifestBounds(m: ReleaseManifest, ctx: { newest: number; now: number }): void {
  if (m.sequence > MAX_RELEASE_SEQUENCE)
    throw new ManifestBoundsError(`sequence ${m.sequence} is above the limit ${MAX_RELEASE_SEQUENCE}`);
  if (m.sequence > ctx.newest + MAX_SEQUENCE_STEP)
    throw new ManifestBoundsError(
      `sequence ${m.sequence} jumps more than ${MAX_SEQUENCE_STEP} past ${m.app}'s newest (#${ctx.newest})`,
    );
  const created = Date.parse(m.createdAt);
  if (!(created <= ctx.now + MAX_CREATED_AHEAD_MS))
    throw new ManifestBoundsError(
      `created ${m.createdAt}, more than ${MAX_CREATED_AHEAD_MS / 3_600_000} h after ` +
        `this vessel's corrected clock (${new Date(ctx.now).toISOString()})`,
    );
}

/**
 * Time never goes back below the newest signed time seen (a clock set to 2020 cannot revive stale
 * metadata), and a floor above the corrected clock (written before floors were bounded) counts for no
 * more than the allowed lead, so it cannot make every later install expired.
 */
export function trustedTime(store: Pick<StateStore, 'get'>, now: number): number {
  const floor = store.get('time.floor') ?? 0;
  return Math.max(now, Math.min(floor, now + MAX_CREATED_AHEAD_MS));
}
