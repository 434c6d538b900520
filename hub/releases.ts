import { verifyManifest } from '../shared/protocol/manifest.js';
import { HubStoreError, type HubStore, type StoredRelease } from './store/hub-store.js';
import { latestRoot } from './roots.js';

/**
 * Stores a signed release manifest after checking it under the hub's latest root (the store keeps the
 * order and uniqueness). The same bytes again: created false.
 */
export async function publishRelease(
  store: HubStore,
  envelope: Buffer,
  publishedBy: string,
  now: number,
): Promise<{ release: StoredRelease; created: boolean }> {
  const latest = await latestRoot(store);
  if (!latest) throw new HubStoreError('the hub has no root document yet', 'bad_request', 400);
  const m = verifyManifest(latest.root, envelope);
  return store.releases.add({ app: m.app, version: m.version, sequence: m.sequence, envelope, publishedBy }, now);
}
