import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';

export class BoardReleaseError extends TenderError {}

export type BoardState = 'staged' | 'live' | 'kept' | 'failed';

export interface BoardRelease {
  version: string;
  app: string;
  sequence: number;
  state: BoardState;
  installedAt: number;
  lastLiveAt: number | null;
  failedReason: string | null;
}

interface Row {
  version: string;
  app: string;
  sequence: number;
  state: BoardState;
  installed_at: number;
  last_live_at: number | null;
  failed_reason: string | null;
}
const fromRow = (r: Row): BoardRelease => ({
  version: r.version,
  app: r.app,
  sequence: r.sequence,
  state: r.state,
  installedAt: r.installed_at,
  lastLiveAt: r.last_live_at,
  failedReason: r.failed_reason,
});

/** The releases kept on board: their signed manifests, which is live, which failed. */
export type BoardReleases = ReturnType<typeof createBoardReleases>;

export function createBoardReleases(db: Db) {
  const get = db.prepare<[string], Row & { envelope: Buffer }>('SELECT * FROM releases WHERE version = ?');
  const list = db.prepare<[], Row>(
    'SELECT version, app, sequence, state, installed_at, last_live_at, failed_reason FROM releases ORDER BY sequence DESC',
  );
  const insert = db.prepare(
    "INSERT INTO releases (version, app, sequence, envelope, state, installed_at) VALUES (?, ?, ?, ?, 'staged', ?) ON CONFLICT(version) DO NOTHING",
  );
  const setState = db.prepare('UPDATE releases SET state = ?, failed_reason = ? WHERE version = ?');
  const demoteLive = db.prepare("UPDATE releases SET state = 'kept' WHERE state = 'live'");
  const stopServing = db.prepare('UPDATE releases SET serving = 0 WHERE serving = 1');
  const makeLive = db.prepare(
    "UPDATE releases SET state = 'live', serving = 1, last_live_at = ?, failed_reason = NULL WHERE version = ?",
  );
  const serving = db.prepare<[], Row>(
    'SELECT version, app, sequence, state, installed_at, last_live_at, failed_reason FROM releases WHERE serving = 1',
  );
  const del = db.prepare('DELETE FROM releases WHERE version = ?');
  const maxSeq = db.prepare<[], { s: number | null }>(
    "SELECT MAX(sequence) AS s FROM releases WHERE state != 'failed'",
  );

  const api = {
    add(manifest: ReleaseManifest, envelope: Buffer, now = Date.now()): void {
      insert.run(manifest.version, manifest.app, manifest.sequence, envelope, now);
    },
    get(version: string): BoardRelease | undefined {
      const r = get.get(version);
      return r && fromRow(r);
    },
    /** The manifest of a kept release, verified again: files on disk may have been altered. */
    manifest(version: string, root: TrustedRoot): ReleaseManifest {
      const r = get.get(version);
      if (!r) throw new BoardReleaseError(`release ${version} is not kept on board`);
      let m: ReleaseManifest;
      try {
        m = verifyManifest(root, r.envelope);
      } catch (err) {
        throw new BoardReleaseError(`release ${version} kept on board no longer verifies: ${(err as Error).message}`);
      }
      if (m.version !== version)
        throw new BoardReleaseError(`release ${version} kept on board holds the manifest of ${m.version}`);
      return m;
    },
    list(): BoardRelease[] {
      return list.all().map(fromRow);
    },
    live(): BoardRelease | undefined {
      return api.list().find((r) => r.state === 'live');
    },
    /**
     * The release that serves: the one last made live. Usually live() too; it stays serving when marked
     * failed with nothing to roll back to. The one record of what runs (status, reports, metrics read it).
     */
    serving(): BoardRelease | undefined {
      const r = serving.get();
      return r && fromRow(r);
    },
    /** The release that was live most recently before the current one. */
    previous(): BoardRelease | undefined {
      return api
        .list()
        .filter((r) => r.state === 'kept' && r.lastLiveAt !== null)
        .sort((a, b) => b.lastLiveAt! - a.lastLiveAt!)[0];
    },
    setLive(version: string, now = Date.now()): void {
      db.transaction(() => {
        demoteLive.run();
        stopServing.run();
        makeLive.run(now, version);
      })();
    },
    markFailed(version: string, reason: string): void {
      setState.run('failed', reason.slice(0, 1000), version);
    },
    remove(version: string): void {
      del.run(version);
    },
    maxSequence(): number {
      return maxSeq.get()?.s ?? 0;
    },
  };
  return api;
}
