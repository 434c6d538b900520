import type { Db } from '../../shared/sqlite.js';

/**
 * Manifests this vessel refused (bad signature, invalid), one row per app@version#sequence: refused once,
 * remembered, so the same manifest is not fetched again on every poll.
 */
export type RefusedManifests = ReturnType<typeof createRefusedManifests>;

export const refusedManifestKey = (app: string, version: string, sequence: number) => `${app}@${version}#${sequence}`;

export function createRefusedManifests(db: Db) {
  const get = db.prepare<[string], { reason: string }>('SELECT reason FROM refused_manifests WHERE release = ?');
  const put = db.prepare(
    'INSERT INTO refused_manifests (release, reason, refused_at) VALUES (?, ?, ?) ' +
      'ON CONFLICT(release) DO UPDATE SET reason = excluded.reason, refused_at = excluded.refused_at',
  );
  return {
    /** Why the release was refused, or undefined if it was not. */
    reason(release: string): string | undefined {
      return get.get(release)?.reason;
    },
    refuse(release: string, reason: string, now = Date.now()): void {
      put.run(release, reason, now);
    },
  };
}
