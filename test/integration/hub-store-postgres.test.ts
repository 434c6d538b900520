import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
