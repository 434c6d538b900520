import { brotliCompressSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { buildHub } from '../../hub/app.js';
import { openHubStore } from '../../hub/store/open-store.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { paths } from '../../shared/protocol/routes.js';
import { encodeBatch } from '../../shared/protocol/telemetry-wire.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { enrolVessel, startHub, type TestVessel } from '../helpers/hub.js';
import { tempDir } from '../helpers/tmp.js';
import { openPg, type PgDb } from '../../hub/store/postgres/pg.js';
import { migratePg, PG_MIGRATIONS } from '../../hub/store/postgres/migrations.js';
import { startPgCluster, type PgCluster } from '../helpers/postgres.js';

// initdb + first start on a loaded 2-core machine: generous, only a bound on a hang.
const START_TIMEOUT_MS = 120_000;

/**
 * The groundwork of the PostgreSQL hub store (issue 15) on a real PostgreSQL from Debian's packages: a
 * private cluster per file, the bundled schema migrating under its advisory lock, and the two primitives
 * the store is built on — exactly-once inserts under concurrent writers, and the log search.
 */
describe('hub store on PostgreSQL: schema and primitives', () => {
  let cluster: PgCluster;
  const open: PgDb[] = [];
  const pool = (url: string) => {
    const db = openPg(url);
    open.push(db);
    return db;
  };
  beforeAll(async () => {
    cluster = await startPgCluster({ timeoutMs: START_TIMEOUT_MS });
  }, START_TIMEOUT_MS + 10_000);
  afterAll(async () => {
    for (const db of open) await db.close();
    await cluster?.stop();
  }, 30_000);

  it('migrates once when two hubs start together, and again is a no-op', async () => {
    const url = await cluster.createDatabase();
    const [a, b] = [pool(url), pool(url)];
    await Promise.all([migratePg(a), migratePg(b)]);
    await migratePg(a);
    expect(await a.all('SELECT id FROM schema_migrations ORDER BY id')).toEqual(
      PG_MIGRATIONS.map((m) => ({ id: m.id })),
    );
    const tables = await a.all<{ t: string }>(
      "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    expect(tables.map((r) => r.t)).toEqual(
      expect.arrayContaining(['vessels', 'releases', 'rollouts', 'rollout_vessels', 'logs', 'packs', 'backups_ashore']),
    );
  }, 60_000);

  it('stores a telemetry record once when 8 connections insert it at the same time', async () => {
    const url = await cluster.createDatabase();
    const dbs = Array.from({ length: 8 }, () => pool(url));
    await migratePg(dbs[0]!);
    const insert = `INSERT INTO logs (vessel_id, epoch, seq, service, level, line, ts_vessel, ts_received, boot_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (vessel_id, epoch, seq) DO NOTHING`;
    const stored = await Promise.all(
      dbs.map((db) =>
        db.tx(async (q) => q.run(insert, ['v_1', 'e1', 7, 'portal', 'info', 'pump started', 1, Date.now(), 'b1'])),
      ),
    );
    expect(stored.reduce((a, n) => a + n, 0)).toBe(1);
    expect(await dbs[0]!.get('SELECT COUNT(*) AS n FROM logs')).toEqual({ n: 1 });
  }, 60_000);

  it('finds lines by their words with full-text search, user text never query syntax', async () => {
    const url = await cluster.createDatabase();
    const db = pool(url);
    await migratePg(db);
    const lines = ['pump 7 started', 'pump 7 stopped: pressure low', "valve 'a' & b | !c"];
    for (const [i, line] of lines.entries())
      await db.run(
        `INSERT INTO logs (vessel_id, epoch, seq, service, level, line, ts_vessel, ts_received, boot_id)
         VALUES ('v_1', 'e1', ?, 's', 'info', ?, ?, 0, 'b')`,
        [i, line, i],
      );
    const grep = async (text: string) =>
      (
        await db.all<{ line: string }>(
          "SELECT line FROM logs WHERE words @@ plainto_tsquery('simple', ?) ORDER BY seq",
          [text],
        )
      ).map((r) => r.line);
    expect(await grep('pump stopped')).toEqual(['pump 7 stopped: pressure low']);
    expect(await grep('pump')).toEqual(lines.slice(0, 2));
    expect(await grep("'a' & b | !c")).toEqual([lines[2]]);
  }, 60_000);

  it("counts a vessel's inflated-bytes budget once across two hubs on one database", async () => {
    const db = await cluster.createDatabase();
    const chunks = tempDir('tender-pg-chunks-');
    const limits = {
      TELEMETRY_MAX_DECOMPRESSED: 2 * 1024 * 1024,
      TELEMETRY_INFLATED_BYTES_PER_MINUTE: 3 * 1024 * 1024,
    };
    const a = await startHub({ store: await openHubStore({ db, chunks }), limits });
    const b = await buildHub({ dataDir: tempDir('tender-hub-b-'), store: await openHubStore({ db, chunks }), limits });
    onTestFinished(() => b.app.close());
    const ship = await enrolVessel(a, 'ship-a');
    const other = await enrolVessel(a, 'ship-b');
    const post = (app: FastifyInstance, v: TestVessel, raw: Buffer) => {
      const url = paths.vesselTelemetry(v.name);
      return app.inject({
        method: 'POST',
        url,
        headers: {
          ...signVesselRequest(v.key, v.id, 'POST', url, Date.now(), raw),
          'content-type': MEDIA.telemetry,
          'content-encoding': 'br',
        },
        payload: raw,
      });
    };
    const batch = (seq: number, padding = 0) => {
      const json = JSON.stringify(
        encodeBatch(
          '0123456789abcdef',
          [{ seq, ts: Date.now(), cls: 1, kind: 'log', source: 'web', body: 'x', bootId: 'b' }],
          {},
          0,
        ),
      );
      return brotliCompressSync(
        Buffer.concat([Buffer.from(json.slice(0, -1)), Buffer.alloc(padding, 0x20), Buffer.from('}')]),
      );
    };
    // Through hub a: a bomb (413, 2 MB charged) and 0.9 MB of padding (200): 2.9 of the 3 MB used.
    expect((await post(a.app, ship, brotliCompressSync(Buffer.alloc(59 * 1024 * 1024, 0x20)))).statusCode).toBe(413);
    expect((await post(a.app, ship, batch(1, 900_000))).statusCode).toBe(200);
    // Through hub b, which has inflated nothing for this vessel itself: the rest of the same minute.
    const limited = await post(b.app, ship, batch(2, 200_000));
    expect(limited.statusCode, limited.body).toBe(429);
    expect(limited.json().message).toMatch(/per minute inflated budget/);
    expect((await post(b.app, ship, batch(3))).statusCode).toBe(429);
    // Another vessel has its own budget on either hub.
    expect((await post(b.app, other, batch(1, 200_000))).statusCode).toBe(200);
  });
});
