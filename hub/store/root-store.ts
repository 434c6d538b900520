import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import { sha256Hex } from '../../shared/trust/secrets.js';
import { verifyInitialRoot, verifyNextRoot, type TrustedRoot } from '../../shared/trust/root.js';

export class RootStoreError extends TenderError {}

/**
 * The chain of root documents the hub hands to vessels. The hub cannot sign any of them; it checks each
 * new one against the one before so that it never serves a chain its vessels would refuse.
 */
export type RootStore = ReturnType<typeof createRootStore>;

export function createRootStore(db: Db) {
  const latestRow = db.prepare<[], { version: number; envelope: Buffer }>(
    'SELECT version, envelope FROM roots ORDER BY version DESC LIMIT 1',
  );
  const byVersion = db.prepare<[number], { envelope: Buffer }>('SELECT envelope FROM roots WHERE version = ?');
  const insert = db.prepare('INSERT INTO roots (version, envelope, expires, added_at) VALUES (?, ?, ?, ?)');
  const versions = db.prepare<[], { version: number; expires: string; added_at: number }>(
    'SELECT version, expires, added_at FROM roots ORDER BY version',
  );

  const latest = (): { root: TrustedRoot; bytes: Buffer } | undefined => {
    const row = latestRow.get();
    if (!row) return undefined;
    return { root: verifyInitialRoot(row.envelope), bytes: row.envelope };
  };

  return {
    latest,
    get(version: number): Buffer | undefined {
      return byVersion.get(version)?.envelope;
    },
    list() {
      return versions.all().map((r) => ({ version: r.version, expires: r.expires, addedAt: r.added_at }));
    },
    /** Trust-on-first-use by the operator who starts the hub; afterwards only verified rotations. */
    add(bytes: Buffer): TrustedRoot {
      const current = latest();
      let root: TrustedRoot;
      if (!current) {
        root = verifyInitialRoot(bytes);
      } else {
        const offered = verifyInitialRoot(bytes);
        if (offered.version === current.root.version && sha256Hex(bytes) === sha256Hex(current.bytes))
          return current.root;
        if (offered.version <= current.root.version) {
          throw new RootStoreError(
            `root v${offered.version} is not newer than the hub's root v${current.root.version}`,
            'stale_root',
            1,
            409,
          );
        }
        root = verifyNextRoot(current.root, bytes);
      }
      insert.run(root.version, bytes, root.payload.expires, Date.now());
      return root;
    },
  };
}
