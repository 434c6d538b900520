import { afterAll, beforeAll } from 'vitest';
import { createFileChunkStore } from '../../hub/store/file-chunk-store.js';
import { migratePg } from '../../hub/store/postgres/migrations.js';
import { openPg } from '../../hub/store/postgres/pg.js';
import { openPgHubStore } from '../../hub/store/postgres/pg-hub-store.js';
import { cleanup } from '../helpers/cleanup.js';
import { startPgCluster, type PgCluster } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { describeHubStore } from '../store/hub-store-suite.js';

// initdb + first start on a loaded 2-core machine: generous, only a bound on a hang.
const START_TIMEOUT_MS = 120_000;

let cluster: PgCluster;
let template: string;
beforeAll(async () => {
  cluster = await startPgCluster({ timeoutMs: START_TIMEOUT_MS });
  template = await cluster.createDatabase();
  const db = openPg(template);
  await migratePg(db);
  await db.close();
}, START_TIMEOUT_MS + 30_000);
afterAll(async () => {
  await cluster?.stop();
}, 60_000);

// The shared hub store suite on a real PostgreSQL (Debian's package, a private cluster for this file):
// a copy of one migrated database per store, dropped when the test ends; another() is another pool on
// it, as a second hub process has. Chunks are a fresh folder per store shared by its handles (the S3
// chunk store runs the same cases in its own file).
describeHubStore('postgres', async () => {
  const url = await cluster.copyDatabase(template);
  cleanup(() => cluster.dropDatabase(url));
  const chunks = tempDir('tender-pg-chunks-');
  return {
    store: await openPgHubStore(url, createFileChunkStore(chunks), { max: 4 }),
    another: async () => openPgHubStore(url, createFileChunkStore(chunks), { max: 4 }),
  };
});
