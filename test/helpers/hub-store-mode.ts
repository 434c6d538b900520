import pg from 'pg';
import { join } from 'node:path';
import { openHubStore } from '../../hub/store/open-store.js';
import type { HubStore } from '../../hub/store/hub-store.js';

/**
 * The hub API, pack and telemetry tests run on the embedded store, and again on PostgreSQL (issue 15):
 * `TENDER_TEST_HUB_STORE=postgres` makes test/global-setup.ts start one private cluster for the run
 * (Debian's PostgreSQL) with a migrated template database; every in-process test hub then gets a copy
 * of it (a fresh database, ~0.3 s) and keeps its chunks in its own folder.
 */
export const HUB_STORE_ENV = 'TENDER_TEST_HUB_STORE';
export const PG_ADMIN_ENV = 'TENDER_TEST_PG_ADMIN_URL';
export const PG_TEMPLATE_ENV = 'TENDER_TEST_PG_TEMPLATE';

let n = 0;

/**
 * A store for a test hub on `dataDir`: undefined for the embedded default, else a fresh PostgreSQL copy;
 * `reopen` opens another store on the same data (a hub restarted, a second hub).
 */
export async function testHubStore(
  dataDir: string,
): Promise<{ store: HubStore; reopen: () => Promise<HubStore> } | undefined> {
  const admin = process.env[PG_ADMIN_ENV];
  if (process.env[HUB_STORE_ENV] !== 'postgres') return undefined;
  if (!admin) throw new Error(`${HUB_STORE_ENV}=postgres but ${PG_ADMIN_ENV} is unset: run through vitest`);
  const name = `h_${process.pid}_${++n}_${Math.random().toString(36).slice(2, 8)}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name} TEMPLATE ${process.env[PG_TEMPLATE_ENV]} STRATEGY FILE_COPY`);
  } finally {
    await c.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const reopen = () => openHubStore({ db: url.toString(), chunks: join(dataDir, 'chunks') }, { pool: 4 });
  return { store: await reopen(), reopen };
}
