import { canonicalJson } from '../shared/trust/canonical-json.js';
import { sha256Hex } from '../shared/trust/secrets.js';
import { EMBEDDED_MANIFEST_MAX_BYTES, type DesiredState } from '../shared/protocol/bodies.js';
import type { Vessel } from './store/vessel-store.js';
import type { RolloutStore } from './store/rollout-store.js';
import type { ReleaseStore } from './store/release-store.js';

/**
 * What a vessel should be running. Releases and rollouts fill `release` in; the ETag is a digest of the
 * canonical form, so a vessel that polls with If-None-Match gets a 304 and no body when nothing changed.
 */
export function desiredStateOf(
  vessel: Vessel,
  rootVersion: number,
  deps: { rollouts: RolloutStore; releases: ReleaseStore },
  opts: { embedManifest?: boolean } = {},
): { state: DesiredState; etag: string } {
  const target = deps.rollouts.targetOf(vessel.id);
  const r = target && deps.releases.get(target.releaseId);
  const release =
    r && target ? { app: r.app, version: r.version, sequence: r.sequence, rolloutId: target.rolloutId } : null;
  const state: DesiredState = { vessel: vessel.name, release, rootVersion };
  if (opts.embedManifest && r) {
    const bytes = deps.releases.envelope(r.id);
    if (bytes && bytes.byteLength <= EMBEDDED_MANIFEST_MAX_BYTES) state.manifest = bytes.toString('base64');
  }
  return { state, etag: `"${sha256Hex(canonicalJson(state)).slice(0, 32)}"` };
}
