import { verifyInitialRoot, verifyNextRoot, type TrustedRoot } from '../shared/trust/root.js';
import { HubStoreError, type AuditEntry, type HubStore } from './store/hub-store.js';

/**
 * The chain of root documents the hub hands to vessels. The hub cannot sign any of them; it checks each
 * new one against the one before so that it never serves a chain its vessels would refuse (the store
 * then keeps the order: first, or exactly latest + 1).
 */
export async function latestRoot(store: HubStore): Promise<{ root: TrustedRoot; bytes: Buffer } | undefined> {
  const row = await store.roots.latest();
  return row && { root: verifyInitialRoot(row.envelope), bytes: row.envelope };
}

/** Trust-on-first-use by the operator who starts the hub; afterwards only verified rotations. */
export async function addRoot(
  store: HubStore,
  bytes: Buffer,
  now: number,
  audit?: (version: number) => AuditEntry,
): Promise<TrustedRoot> {
  const current = await latestRoot(store);
  let root: TrustedRoot;
  if (!current) {
    root = verifyInitialRoot(bytes);
  } else {
    const offered = verifyInitialRoot(bytes);
    if (offered.version === current.root.version && bytes.equals(current.bytes)) {
      const r = { version: offered.version, envelope: bytes, expires: offered.payload.expires };
      await store.roots.add(r, now, audit?.(offered.version));
      return current.root;
    }
    if (offered.version <= current.root.version)
      throw new HubStoreError(
        `root v${offered.version} is not newer than the hub's root v${current.root.version}`,
        'stale_root',
        409,
      );
    root = verifyNextRoot(current.root, bytes);
  }
  await store.roots.add(
    { version: root.version, envelope: bytes, expires: root.payload.expires },
    now,
    audit?.(root.version),
  );
  return root;
}
