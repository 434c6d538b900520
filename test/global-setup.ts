import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHubStore } from '../hub/store/open-store.js';
import { HUB_STORE_ENV, PG_ADMIN_ENV, PG_TEMPLATE_ENV } from './helpers/hub-store-mode.js';
import { startPgCluster, type PgCluster } from './helpers/postgres.js';
import { makeCaIn, RUN_CA_ENV } from './helpers/tls.js';

/**
 * Once per `vitest run`, before any worker starts: the run's CA (test/helpers/tls.ts runCa), which the
 * journey tests' hubs serve certificates of. Workers and every process they start inherit the variables,
 * so the test code's own fetch and the ops commands trust it like a CA of the system store.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'tender-run-ca-'));
  const ca = makeCaIn(dir, 'tender-test-run-ca');
  process.env[RUN_CA_ENV] = dir;
  process.env.NODE_EXTRA_CA_CERTS = ca.certFile;
  const cluster = process.env[HUB_STORE_ENV] === 'postgres' ? await pgForTestHubs() : undefined;
  return async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

/** The run's PostgreSQL for in-process test hubs (test/helpers/hub-store-mode.ts), with a migrated template. */
async function pgForTestHubs(): Promise<PgCluster> {
  const cluster = await startPgCluster({ timeoutMs: 120_000 });
  const template = await cluster.createDatabase();
  const chunks = mkdtempSync(join(tmpdir(), 'tender-pg-tpl-'));
  const store = await openHubStore({ db: template, chunks });
  await store.close();
  rmSync(chunks, { recursive: true, force: true });
  process.env[PG_ADMIN_ENV] = cluster.url();
  process.env[PG_TEMPLATE_ENV] = new URL(template).pathname.slice(1);
  return cluster;
}
