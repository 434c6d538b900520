import { join } from 'node:path';
import { ensureDir } from '../../../shared/fs-atomic.js';
import { openDatabase, type Db } from '../../../shared/sqlite.js';
import { createFileChunkStore } from '../file-chunk-store.js';
import type { HubChunkStore, HubStore } from '../hub-store.js';
import { HUB_MIGRATIONS } from '../migrations.js';
import { sqliteAudit } from './audit.js';
import { sqliteEnrolment } from './enrolment.js';
import { sqliteOpsTokens } from './ops-tokens.js';
import { sqlitePacks } from './packs.js';
import { sqlitePolicies } from './policies.js';
import { sqliteHubTls } from './hub-tls.js';
import { sqliteBackups } from './backups.js';
import { sqliteReleases } from './releases.js';
import { sqliteDirectives } from './rollout-directives.js';
import { sqliteWindows } from './rollout-windows.js';
import { sqliteSettings } from './rollout-settings.js';
import { sqliteRollouts } from './rollouts.js';
import { sqliteRoots } from './roots.js';
import { sqliteTelemetry } from './telemetry.js';
import { sqliteVessels } from './vessels.js';
import { sqlitePage } from './page.js';
import { sqliteRequests } from './requests.js';

/**
 * The hub store on one SQLite database (WAL, opened by shared/sqlite.ts with the hub's migrations) and a
 * chunk store. Every method runs its statements in one synchronous better-sqlite3 transaction, so no
 * other request in this process can interleave with it; writes that read first take the write lock
 * up front (BEGIN IMMEDIATE), so another process on the same file (a CLI beside the hub) cannot either.
 * `close` closes the database only when this store opened it.
 */
export function createSqliteHubStore(db: Db, chunks: HubChunkStore, opts: { ownsDb?: boolean } = {}): HubStore {
  const audit = sqliteAudit(db);
  const enrolment = sqliteEnrolment(db, audit.write);
  const ping = db.prepare('SELECT 1');
  return {
    vessels: sqliteVessels(db, audit.write, enrolment.insertToken),
    page: sqlitePage(db),
    requests: sqliteRequests(db),
    enrolment: enrolment.records,
    opsTokens: sqliteOpsTokens(db, audit.write),
    roots: sqliteRoots(db, audit.write),
    releases: sqliteReleases(db, audit.write),
    rollouts: sqliteRollouts(db, audit.write),
    windows: sqliteWindows(db, audit.write),
    directives: sqliteDirectives(db),
    settings: sqliteSettings(db, audit.write),
    telemetry: sqliteTelemetry(db),
    audit: audit.records,
    packs: sqlitePacks(db),
    policies: sqlitePolicies(db, audit.write),
    hubTls: sqliteHubTls(db, audit.write),
    backups: sqliteBackups(db, chunks),
    chunks,
    async ping() {
      ping.get();
    },
    async close() {
      if (opts.ownsDb && db.open) db.close();
    },
  };
}

/** The embedded hub's state under dataDir: DATA/hub.db and the chunk files under DATA/chunks. */
export function openSqliteHubStore(dataDir: string): HubStore {
  ensureDir(dataDir);
  ensureDir(join(dataDir, 'chunks'));
  const db = openDatabase(join(dataDir, 'hub.db'), HUB_MIGRATIONS);
  return createSqliteHubStore(db, createFileChunkStore(join(dataDir, 'chunks')), { ownsDb: true });
}
