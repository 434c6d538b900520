import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { removeAppContainers } from '../helpers/images.js';
import {
  enrolVessel,
  eventuallyOrReport,
  startShore,
  vesselReport,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { dockerExec, postgresImage, publishLocalImages } from '../helpers/backup.js';
import { unique } from '../helpers/names.js';

/**
 * Backups ashore with a real PostgreSQL container, a real hub and a real agent: a policy published to
 * the hub for one vessel reaches it in its desired state and is installed after verification; a backup
 * is cut into content-defined chunks, sealed to the shore key and uploaded; a kill -9 of the agent
 * after the first upload request resumes with only the chunks the hub lacks; the download opens with
 * the seal key to exactly the dump; a second backup after a small change uploads a small fraction.
 */
const APP = unique('bka');
const CONTAINER = `tender-${APP}-db-1.0.0`;
const POLICY = 'db-ashore';
let shore: Shore;
let vessel: Vessel;
let sealKey: string;

const psql = (sql: string) =>
  dockerExec(CONTAINER, ['psql', '-X', '-d', 'sms', '-v', 'ON_ERROR_STOP=1', '-tAc', sql]).trim();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function boardBackups(): Promise<any[]> {
  const r = await tender(['backup', 'list', '--config', vessel.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).backups;
}
async function ashore(): Promise<any[]> {
  const r = await tender(['backup', 'list', '--vessel', vessel.name, '--json'], shore.env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).backups;
}
function shipment(id: string): any {
  const db = new Database(join(vessel.dataDir, 'backups.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT * FROM shipments WHERE backup_id = ?').get(id);
  } finally {
    db.close();
  }
}
const report = async () =>
  `${await vesselReport(vessel)}\nboard: ${JSON.stringify(await boardBackups().catch(String))}\n` +
  `ashore: ${JSON.stringify(await ashore().catch(String))}\nagent: ${vessel.agent?.lines.slice(-30).join('\n')}`;

async function runBackup(): Promise<any> {
  const r = await tender(['backup', 'run', POLICY, '--config', vessel.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  useFileScope();
  const image = postgresImage();
  removeAppContainers(APP);
  shore = await startShore();
  vessel = await enrolVessel(shore, `ship-ba-${process.pid}`, {
    watchSeconds: 0,
    backup: {
      tickSeconds: 1,
      diskMarginBytes: 64 * 1024 * 1024,
      ashoreTickSeconds: 1,
      ashoreBytesPerSecond: 0,
      // Small requests, so a kill -9 after the first leaves most of the backup still to send.
      ashorePackBytes: 32 * 1024,
    },
  });
  await vessel.startRouter();
  vessel.startAgent();
  const compose = join(shore.dir, 'db.yml');
  writeFileSync(
    compose,
    `name: ${APP}
services:
  db:
    image: ${image}
    volumes: ["pgdata:/var/lib/postgresql/data"]
    healthcheck: { test: ["CMD", "pg_isready", "-h", "/tmp"], interval: 1s, timeout: 3s, retries: 60 }
    x-tender: { strategy: recreate, health: { docker: true, timeout: 90s } }
volumes: { pgdata: }
`,
  );
  await publishLocalImages(shore, compose, '1.0.0', 1);
  await eventuallyOrReport(
    'the database release live',
    async () => (await vessel.status()).release.current === '1.0.0',
    report,
    120_000,
    500,
  );
  dockerExec(CONTAINER, ['createdb', 'sms']);
  // A maintenance history of some size: work orders with free text, and sensor readings.
  psql(
    `SELECT setseed(0.5);
     CREATE TABLE work_orders (id int PRIMARY KEY, equipment int NOT NULL, status text NOT NULL, note text NOT NULL);
     INSERT INTO work_orders SELECT g, g % 900, (ARRAY['open','done','done'])[1 + g % 3],
       'inspect ' || md5(g::text) || ' and replace the seal if worn' FROM generate_series(1, 40000) g;
     CREATE TABLE readings (sensor int NOT NULL, at timestamptz NOT NULL, value double precision NOT NULL);
     INSERT INTO readings SELECT 1 + g % 100, timestamptz '2026-01-01' + g * interval '15 seconds', random() * 100
       FROM generate_series(1, 60000) g;`,
  );
  const keygen = await tender(['policy', 'keygen', '--out', join(shore.dir, 'seal'), '--json']);
  expect(keygen.code, keygen.stderr).toBe(0);
  const pub = JSON.parse(keygen.stdout);
  sealKey = join(shore.dir, 'seal', 'seal.key');
  writeFileSync(
    join(shore.dir, 'policy.yml'),
    `name: ${POLICY}
app: ${APP}
service: db
method: { type: postgres, database: sms }
schedule: "0 3 * * *"
timeout: 5m
compression: gzip
retention: { count: 10, age: 30d }
ashore: { ship: all, when: any, budgetPerDay: 1GB }
encryptTo: { key: "${pub.key}", keyId: "${pub.keyId}" }
`,
  );
}, 900_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
});

describe('backups ashore', () => {
  let first: any;
  let firstBytes: number;

  it('a policy published to the hub for this vessel reaches it in the desired state and is installed', async () => {
    const other = await tender(
      ['policy', 'publish', join(shore.dir, 'policy.yml'), '--key', shore.releaseKey, '--sequence', '1'].concat([
        '--target',
        'vessel:someone-else',
      ]),
      shore.env,
    );
    expect(other.code, other.stderr).toBe(0);
    const pub = await tender(
      [
        'policy',
        'publish',
        join(shore.dir, 'policy.yml'),
        '--key',
        shore.releaseKey,
        '--sequence',
        '2',
        '--target',
        `vessel:${vessel.name}`,
      ],
      shore.env,
    );
    expect(pub.code, pub.stderr).toBe(0);
    expect(pub.stdout).toContain(`published policy ${POLICY} #2`);
    const stale = await tender(
      ['policy', 'publish', join(shore.dir, 'policy.yml'), '--key', shore.releaseKey, '--sequence', '2'],
      shore.env,
    );
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/exists with other contents|not above/);
    const listed = await tender(['policy', 'list', '--json'], shore.env);
    expect(JSON.parse(listed.stdout).policies).toMatchObject([
      { name: POLICY, sequence: 2, targets: [`vessel:${vessel.name}`] },
    ]);
    await eventuallyOrReport(
      'the policy installed on board from the desired state',
      async () => {
        const r = await tender(['policy', 'list', '--config', vessel.config, '--json']);
        return JSON.parse(r.stdout).policies.some((p: any) => p.name === POLICY && p.sequence === 2);
      },
      report,
      60_000,
      500,
    );
  }, 120_000);

  it('kill -9 of the agent mid-upload: the restarted agent sends only what the hub lacks, then the list', async () => {
    await vessel.agent!.stop();
    first = await runBackup();
    const killed = vessel.startAgent({ TENDER_FAULT: 'kill:after:backup-ship' });
    await eventuallyOrReport(
      'the agent to die after its first upload',
      async () => killed.proc.signalCode === 'SIGKILL',
      report,
      60_000,
      200,
    );
    const cut = shipment(first.id);
    expect(cut).toMatchObject({ state: 'pending' });
    expect(cut.uploaded_chunks).toBeGreaterThan(0);
    expect(cut.uploaded_chunks).toBeLessThan(cut.chunks);
    expect(await ashore()).toEqual([]);
    vessel.startAgent();
    const shipped = await eventuallyOrReport(
      'the backup ashore',
      async () => (await ashore()).find((b) => b.id === first.id),
      report,
      120_000,
      500,
    );
    const done = shipment(first.id);
    expect(done).toMatchObject({ state: 'done', attempts: 2 });
    // Over the two attempts no chunk was sent twice: the second asked the hub and sent only the rest.
    expect(done.uploaded_chunks).toBeLessThanOrEqual(done.chunks);
    expect(done.uploaded_chunks).toBeGreaterThan(cut.uploaded_chunks);
    expect(shipped).toMatchObject({ policy: POLICY, sealed: expect.stringMatching(/^[0-9a-f]{16}$/), rawSha256: null });
    firstBytes = done.bytes;
  }, 240_000);

  it('the download is sealed: it opens with the shore key to exactly the dump taken on board', async () => {
    const out = join(shore.dir, 'first.sealed');
    const d = await tender(['backup', 'download', first.id, '--vessel', vessel.name, '--out', out], shore.env);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('downloaded sealed backup');
    const sealed = readFileSync(out);
    // The hub never saw the rows: no plaintext from the table in what it served.
    expect(sealed.includes(Buffer.from('and replace the seal if worn'))).toBe(false);
    const opened = join(shore.dir, 'first.dump');
    const o = await tender(['backup', 'open', out, '--key', sealKey, '--out', opened]);
    expect(o.code, o.stderr).toBe(0);
    const onBoard = gunzipSync(readFileSync(first.file));
    expect(sha(readFileSync(opened))).toBe(sha(onBoard));
    // Altered by one byte, it is refused and nothing is written.
    sealed[sealed.byteLength - 100]! ^= 1;
    writeFileSync(`${out}.bad`, sealed);
    const bad = await tender(['backup', 'open', `${out}.bad`, '--key', sealKey, '--out', `${opened}.bad`]);
    expect(bad.code).not.toBe(0);
  }, 120_000);

  it('a second backup after a small change uploads a small fraction of the first', async () => {
    // A day at sea: the week's open work orders progressed, a few new ones, a day of readings appended.
    // (An update scattered over every page of a table moves rows all through the dump and costs far more:
    // bench/RESULTS.md has both.)
    psql(
      `UPDATE work_orders SET status = 'done' WHERE id > 39000 AND status = 'open';
       INSERT INTO work_orders SELECT g, g % 900, 'open', 'inspect ' || md5(g::text) || ' and replace the seal if worn'
         FROM generate_series(40001, 40200) g;
       INSERT INTO readings SELECT 1 + g % 100, timestamptz '2026-02-01' + g * interval '15 seconds', 50
         FROM generate_series(1, 1500) g;`,
    );
    const second = await runBackup();
    await eventuallyOrReport(
      'the second backup ashore',
      async () => (await ashore()).some((b) => b.id === second.id),
      report,
      120_000,
      500,
    );
    const s = shipment(second.id);
    const ratio = s.bytes / firstBytes;
    console.log(
      `backups ashore: first ${firstBytes} bytes (${shipment(first.id).chunks} chunks), second ${s.bytes} bytes ` +
        `(${s.uploaded_chunks} of ${s.chunks} chunks uploaded), ratio ${ratio.toFixed(3)}; ` +
        `dump ${second.rawBytes} raw, ${second.bytes} gzip`,
    );
    expect(s.uploaded_chunks).toBeLessThan(s.chunks / 4);
    expect(ratio).toBeLessThan(0.25);
    const list = await tender(['backup', 'list', '--vessel', vessel.name], shore.env);
    expect(list.stdout).toContain(second.id);
    expect(list.stdout).toContain(first.id);
  }, 180_000);

  it('restore from ashore: the board copy lost, the dump downloaded ashore is imported and restored', async () => {
    const sealed = join(shore.dir, 'restore.sealed');
    const dump = join(shore.dir, 'restore.dump');
    const d = await tender(['backup', 'download', first.id, '--vessel', vessel.name, '--out', sealed], shore.env);
    expect(d.code, d.stderr).toBe(0);
    const o = await tender(['backup', 'open', sealed, '--key', sealKey, '--out', dump]);
    expect(o.code, o.stderr).toBe(0);
    const dumpSha = sha(readFileSync(dump));
    // Carried on board gzip-compressed, as a crew would bring it.
    const carried = join(shore.dir, 'restore.dump.gz');
    writeFileSync(carried, gzipSync(readFileSync(dump)));
    // The board's own copy is gone (a failed disk, or retention), and so is the link.
    rmSync(first.file);
    await shore.hub.stop();
    const lost = await tender(['backup', 'restore', first.id, '--config', vessel.config]);
    expect(lost.code).toBe(1);
    expect(lost.stderr).toMatch(/is missing; refused/);
    const before = (await boardBackups()).length;
    const imp = (file: string, ...extra: string[]) =>
      tender(['backup', 'import', file, '--policy', POLICY, '--config', vessel.config, '--json', ...extra]);
    const refusals: [string, string[], RegExp][] = [
      [sealed, [], /sealed to the shore key, which never comes on board/],
      [join(shore.dir, 'policy.yml'), [], /is not a pg_dump custom-format archive/],
      [carried, ['--sha256', sha(Buffer.from('another dump'))], /not [0-9a-f]{64} as given/],
      [carried, ['--policy', 'no-such-policy'], /no-such-policy/],
    ];
    for (const [file, extra, why] of refusals) {
      const r = await imp(file, ...extra);
      expect(r.code, `${file} ${extra.join(' ')}: ${r.stdout}`).toBe(1);
      expect(JSON.parse(r.stdout).message).toMatch(why);
    }
    expect((await boardBackups()).length).toBe(before);
    const r = await imp(carried, '--sha256', dumpSha);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const imported = JSON.parse(r.stdout);
    expect(imported).toMatchObject({ policy: POLICY, kind: 'imported', state: 'ok', rawBytes: first.rawBytes });
    // Work lost since the first backup: the restore brings the first backup's rows back through the gate.
    psql('DELETE FROM work_orders WHERE id > 100');
    const v = await tender(['backup', 'verify', imported.id, '--config', vessel.config]);
    expect(v.code, v.stderr).toBe(0);
    const back = await tender(['backup', 'restore', imported.id, '--config', vessel.config]);
    expect(back.code, back.stderr).toBe(0);
    expect(psql('SELECT count(*) FROM work_orders')).toBe('40000');
    // What came from ashore is not the policy's last good backup, and never goes ashore again.
    const pl = await tender(['policy', 'list', '--config', vessel.config, '--json']);
    const mine = JSON.parse(pl.stdout).policies.find((p: any) => p.name === POLICY);
    expect(mine.lastGood.id).not.toBe(imported.id);
    expect(shipment(imported.id)).toBeUndefined();
  }, 240_000);
});
