import { canonicalJson } from '../shared/canonical-json.js';
import { sha256Hex } from '../shared/secrets.js';
import type { DesiredState } from '../shared/api.js';
import type { Vessel } from './vessel-store.js';

/**
 * What a vessel should be running. Releases and rollouts fill `release` in; the ETag is a digest of the
 * canonical form, so a vessel that polls with If-None-Match gets a 304 and no body when nothing changed.
 */
export function desiredStateOf(vessel: Vessel, rootVersion: number): { state: DesiredState; etag: string } {
  const state: DesiredState = { vessel: vessel.name, release: null, rootVersion };
  return { state, etag: `"${sha256Hex(canonicalJson(state)).slice(0, 32)}"` };
}
