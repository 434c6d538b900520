import { verifyManifest, type ReleaseManifest } from '../shared/protocol/manifest.js';
import { verifyInitialRoot } from '../shared/trust/root.js';
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

/**
 * The manifest of a stored release, verified again under the root that was in force when the hub
 * accepted it (the newest root added at or before its publication), not under the latest: rotating a
 * release key out must not break the downloads of a release signed before the rotation, which vessels
 * may still be fetching. Whether a vessel installs it is the vessel's decision, under its own root.
 * A root added in the very millisecond of the publication may have come after it: then the one before
 * is tried too.
 */
export async function storedManifest(
  store: HubStore,
  release: StoredRelease,
): Promise<{ m: ReleaseManifest; bytes: Buffer }> {
  const bytes = await store.releases.envelope(release.id);
  if (!bytes) throw new HubStoreError(`no release ${release.app}@${release.version}`, 'not_found', 404);
  const roots = (await store.roots.list()).filter((r) => r.addedAt <= release.createdAt).reverse();
  const candidates = roots[0]?.addedAt === release.createdAt ? roots.slice(0, 2) : roots.slice(0, 1);
  if (candidates.length === 0) throw new HubStoreError('the hub has no root document yet', 'bad_request', 400);
  let last: unknown;
  for (const r of candidates) {
    const envelope = await store.roots.get(r.version);
    try {
      return { m: verifyManifest(verifyInitialRoot(envelope!), bytes), bytes };
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
