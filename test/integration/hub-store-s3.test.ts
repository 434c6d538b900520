import { afterAll, beforeAll, describe } from 'vitest';
import { migratePg } from '../../hub/store/postgres/migrations.js';
import { openPg } from '../../hub/store/postgres/pg.js';
import { openPgHubStore } from '../../hub/store/postgres/pg-hub-store.js';
import { openChunkStore } from '../../hub/store/chunk-stores.js';
import { cleanup } from '../helpers/cleanup.js';
import { startPgCluster, type PgCluster } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import type { OpenStore } from '../store/fixtures.js';
import { backupTests } from '../store/suite-backups.js';
import { chunkTests } from '../store/suite-chunks.js';

const START_TIMEOUT_MS = 120_000;

let cluster: PgCluster;
let s3: TestS3;
let template: string;
let n = 0;
beforeAll(async () => {
  s3 = await startS3();
  cluster = await startPgCluster({ timeoutMs: START_TIMEOUT_MS });
  template = await cluster.createDatabase();
  const db = openPg(template);
  await migratePg(db);
  await db.close();
}, START_TIMEOUT_MS + 30_000);
afterAll(async () => {
  await s3?.stop();
  await cluster?.stop();
}, 60_000);

// The chunk store on S3 (s3rver, an emulator: see test/helpers/s3.ts) under the shared suite's chunk and
// backup cases (backups ask the chunk store what it holds and delete what retention frees), with the
// records in PostgreSQL: a fresh prefix per store, shared by another() as by a second hub process.
const open: OpenStore = async () => {
  const url = await cluster.copyDatabase(template);
  cleanup(() => cluster.dropDatabase(url));
  const location = `s3://${s3.bucket}/t${process.pid}-${++n}`;
  const make = async () => openPgHubStore(url, await openChunkStore(location, s3.env), { max: 4 });
  const store = await make();
  cleanup(() => store.close());
  return {
    store,
    async another() {
      const s = await make();
      cleanup(() => s.close());
      return s;
    },
  };
};

describe('hub store (postgres + s3)', () => {
  chunkTests(open);
  backupTests(open);
});
