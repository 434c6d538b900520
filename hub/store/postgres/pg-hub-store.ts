import type { HubChunkStore, HubStore } from '../hub-store.js';
import { pgAudit } from './audit.js';
import { pgBackups } from './backups.js';
import { pgEnrolment } from './enrolment.js';
import { migratePg } from './migrations.js';
import { pgOpsTokens } from './ops-tokens.js';
import { pgPacks } from './packs.js';
import { openPg, type PgDb } from './pg.js';
import { pgPolicies } from './policies.js';
import { pgHubTls } from './hub-tls.js';
import { pgReleases } from './releases.js';
import { pgRequests } from './requests.js';
import { pgDirectives } from './rollout-directives.js';
import { pgWindows } from './rollout-windows.js';
import { pgSettings } from './rollout-settings.js';
import { pgRollouts } from './rollouts.js';
import { pgRoots } from './roots.js';
import { pgTelemetry } from './telemetry.js';
import { pgVessels } from './vessels.js';
import { pgPage } from './page.js';
import { pgCounters } from './counters.js';

/**
 * The hub store on PostgreSQL (a pool, see pg.ts) and a chunk store, for several hub processes on one
 * database. Each method is one transaction where SQLite used one; those that read before they write take
 * the store's advisory write lock, high-volume writes lean on unique keys and ON CONFLICT instead.
 * `close` ends the pool (and the chunk store is the caller's).
 */
export function createPgHubStore(db: PgDb, chunks: HubChunkStore): HubStore {
  const audit = pgAudit(db);
  const enrolment = pgEnrolment(db, audit.write);
  return {
    vessels: pgVessels(db, audit.write, enrolment.insertToken),
    page: pgPage(db),
    requests: pgRequests(db),
    enrolment: enrolment.records,
    opsTokens: pgOpsTokens(db, audit.write),
    roots: pgRoots(db, audit.write),
    releases: pgReleases(db, audit.write),
    rollouts: pgRollouts(db, audit.write),
    windows: pgWindows(db, audit.write),
    directives: pgDirectives(db),
    settings: pgSettings(db, audit.write),
    telemetry: pgTelemetry(db),
    audit: audit.records,
    packs: pgPacks(db),
    policies: pgPolicies(db, audit.write),
    hubTls: pgHubTls(db, audit.write),
    backups: pgBackups(db, chunks),
    chunks,
    counters: pgCounters(db),
    async ping() {
      await db.get('SELECT 1');
    },
    async close() {
      await db.close();
    },
  };
}

/** Opens a pool on `url`, brings the schema up to date (one hub at a time) and returns the store. */
export async function openPgHubStore(
  url: string,
  chunks: HubChunkStore,
  opts: { max?: number } = {},
): Promise<HubStore> {
  const db = openPg(url, opts);
  try {
    await migratePg(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return createPgHubStore(db, chunks);
}
