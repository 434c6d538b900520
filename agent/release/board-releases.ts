import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { sha256Hex } from '../../shared/trust/secrets.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';

export class BoardReleaseError extends TenderError {}

export type BoardState = 'staged' | 'live' | 'kept' | 'failed';

/** A release on board is known by app, version and the digest of its signed manifest, never by version alone. */
export interface BoardRelease {
  app: string;
  version: string;
  digest: string;
  sequence: number;
  state: BoardState;
  installedAt: number;
  lastLiveAt: number | null;
  failedReason: string | null;
}

interface Row {
  app: string;
  version: string;
  digest: string;
  sequence: number;
  state: BoardState;
  installed_at: number;
  last_live_at: number | null;
  failed_reason: string | null;
}
const COLUMNS = 'app, version, digest, sequence, state, installed_at, last_live_at, failed_reason';
const fromRow = (r: Row): BoardRelease => ({
  app: r.app,
  version: r.version,
  digest: r.digest,
  sequence: r.sequence,
  state: r.state,
  installedAt: r.installed_at,
  lastLiveAt: r.last_live_at,
  failedReason: r.failed_reason,
});

/** How people and logs name a release: APP@VERSION. */
export const releaseLabel = (r: { app: string; version: string }) => `${r.app}@${r.version}`;

/** The digest a release is known by: sha256 (hex) of its signed manifest envelope's bytes. */
export const manifestDigest = (envelope: Uint8Array) => sha256Hex(envelope);

/** The releases kept on board, per app: their signed manifests, which is live, which failed. */
export type BoardReleases = ReturnType<typeof createBoardReleases>;

export function createBoardReleases(db: Db) {
  const get = db.prepare<[string, string], Row & { envelope: Buffer }>(
    'SELECT * FROM releases WHERE app = ? AND version = ?',
  );
  const list = db.prepare<[], Row>(`SELECT ${COLUMNS} FROM releases ORDER BY app, sequence DESC`);
  const insert = db.prepare(
    'INSERT INTO releases (app, version, digest, sequence, envelope, state, installed_at) ' +
      "VALUES (?, ?, ?, ?, ?, 'staged', ?) ON CONFLICT(app, version) DO NOTHING",
  );
  const setState = db.prepare('UPDATE releases SET state = ?, failed_reason = ? WHERE app = ? AND version = ?');
  const demoteLive = db.prepare("UPDATE releases SET state = 'kept' WHERE state = 'live' AND app = ?");
  const stopServing = db.prepare('UPDATE releases SET serving = 0 WHERE serving = 1 AND app = ?');
  const makeLive = db.prepare(
    "UPDATE releases SET state = 'live', serving = 1, last_live_at = ?, " +
      'failed_reason = NULL WHERE app = ? AND version = ?',
  );
  const serving = db.prepare<[], Row>(`SELECT ${COLUMNS} FROM releases WHERE serving = 1 ORDER BY app`);
  const del = db.prepare('DELETE FROM releases WHERE app = ? AND version = ?');
  const maxSeq = db.prepare<[string, string], { s: number | null }>(
    "SELECT MAX(sequence) AS s FROM releases WHERE state != 'failed' AND app = ? AND version != ?",
  );
  const highWater = db.prepare<[string], { sequence: number }>('SELECT sequence FROM app_sequences WHERE app = ?');
  const raiseHighWater = db.prepare(
    'INSERT INTO app_sequences (app, sequence) VALUES (?, ?) ' +
      'ON CONFLICT(app) DO UPDATE SET sequence = MAX(sequence, excluded.sequence)',
  );
  // Rows from before digests were kept get theirs from the envelope they hold.
  const undigested = db.prepare<[], { app: string; version: string; envelope: Buffer }>(
    "SELECT app, version, envelope FROM releases WHERE digest = ''",
  );
  const setDigest = db.prepare('UPDATE releases SET digest = ? WHERE app = ? AND version = ?');
  for (const r of undigested.all()) setDigest.run(manifestDigest(r.envelope), r.app, r.version);

  const api = {
    add(manifest: ReleaseManifest, envelope: Buffer, now = Date.now()): void {
      insert.run(manifest.app, manifest.version, manifestDigest(envelope), manifest.sequence, envelope, now);
    },
    get(app: string, version: string): BoardRelease | undefined {
      const r = get.get(app, version);
      return r && fromRow(r);
    },
    /** The manifest of a kept release, verified again: files on disk may have been altered. */
    manifest(app: string, version: string, root: TrustedRoot): ReleaseManifest {
      const label = releaseLabel({ app, version });
      const r = get.get(app, version);
      if (!r) throw new BoardReleaseError(`release ${label} is not kept on board`);
      if (manifestDigest(r.envelope) !== r.digest)
        throw new BoardReleaseError(`release ${label} kept on board no longer matches its digest`);
      let m: ReleaseManifest;
      try {
        m = verifyManifest(root, r.envelope);
      } catch (err) {
        throw new BoardReleaseError(`release ${label} kept on board no longer verifies: ${(err as Error).message}`);
      }
      if (m.version !== version || m.app !== app)
        throw new BoardReleaseError(`release ${label} kept on board holds the manifest of ${releaseLabel(m)}`);
      return m;
    },
    /** Every release on board, or one app's, newest sequence first. */
    list(app?: string): BoardRelease[] {
      const all = list.all().map(fromRow);
      return app === undefined ? all : all.filter((r) => r.app === app);
    },
    /** Releases with this version, of any app (a crew command may name a version alone). */
    withVersion(version: string): BoardRelease[] {
      return api.list().filter((r) => r.version === version);
    },
    /** The apps with a release on board. */
    apps(): string[] {
      return [...new Set(api.list().map((r) => r.app))];
    },
    /** The app's live release (with no app: the first app's, for views of a one-app vessel). */
    live(app?: string): BoardRelease | undefined {
      return api.list(app).find((r) => r.state === 'live');
    },
    /**
     * The release that serves the app: the one last made live. Usually live() too; it stays serving when
     * marked failed with nothing to roll back to. The one record of what runs (status, reports, metrics
     * read it). With no app: the first app's.
     */
    serving(app?: string): BoardRelease | undefined {
      const all = serving.all().map(fromRow);
      return app === undefined ? all[0] : all.find((r) => r.app === app);
    },
    /** Every app's serving release. */
    servingAll(): BoardRelease[] {
      return serving.all().map(fromRow);
    },
    /** The app's release that was live most recently before the current one. */
    previous(app: string): BoardRelease | undefined {
      return api
        .list(app)
        .filter((r) => r.state === 'kept' && r.lastLiveAt !== null)
        .sort((a, b) => b.lastLiveAt! - a.lastLiveAt!)[0];
    },
    setLive(app: string, version: string, now = Date.now()): void {
      db.transaction(() => {
        demoteLive.run(app);
        stopServing.run(app);
        makeLive.run(now, app, version);
        const r = get.get(app, version);
        if (r) raiseHighWater.run(app, r.sequence);
      })();
    },
    markFailed(app: string, version: string, reason: string): void {
      setState.run('failed', reason.slice(0, 1000), app, version);
    },
    remove(app: string, version: string): void {
      del.run(app, version);
    },
    /**
     * The app's highest sequence on board or ever live (leaving out `except`, the release being judged):
     * an older release is a rollback. Per app, never across apps.
     */
    maxSequence(app: string, except = ''): number {
      return Math.max(maxSeq.get(app, except)?.s ?? 0, highWater.get(app)?.sequence ?? 0);
    },
  };
  return api;
}
