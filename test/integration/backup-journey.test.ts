import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { dockerExec, postgresImage, publishLocalImages, signPolicy } from '../helpers/backup.js';
import { unique } from '../helpers/names.js';

/**
 * The backup journey with a real PostgreSQL server in a container and a real agent process, the hub
 * stopped once the release is live: a signed policy installed on board, a backup on schedule (the agent's
 * clock shifted to just before the slot), rows changed, verify in a scratch container, restore through the
 * health gate; then kill -9 of the agent mid-dump and of `tender backup restore` mid-restore, each leaving
 * the database serving complete data.
 */
const APP = unique('bkj');
const CONTAINER = `tender-${APP}-db-1.0.0`;
const DAY = 86_400_000;
let shore: Shore;
let vessel: Vessel;
let policyFile: string;
let ORIGINAL: string;

/** A clock offset putting the vessel `secondsBefore` seconds before the next 03:00 UTC, `days` later. */
function offsetBefore03(secondsBefore: number, days = 0): string {
  const now = Date.now();
  const next = new Date(now);
  next.setUTCHours(3, 0, 0, 0);
  if (next.getTime() <= now) next.setTime(next.getTime() + DAY);
  return String(next.getTime() + days * DAY - secondsBefore * 1000 - now);
}

const psql = (sql: string) =>
  dockerExec(CONTAINER, ['psql', '-X', '-d', 'sms', '-v', 'ON_ERROR_STOP=1', '-tAc', sql]).trim();
const summary = () => psql("SELECT count(*) || ':' || coalesce(sum(qty), 0) FROM parts");

async function listing(): Promise<{ backups: any[]; restores: any[] }> {
  const r = await tender(['backup', 'list', '--config', vessel.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}
const backups = async () => (await listing()).backups;

const report = async () => `${await vesselReport(vessel)}\nbackups: ${JSON.stringify(await backups().catch(String))}`;

beforeAll(async () => {
  useFileScope();
  const image = postgresImage();
  removeAppContainers(APP);
  shore = await startShore();
  vessel = await enrolVessel(shore, `ship-bk-${process.pid}`, {
    watchSeconds: 0,
    backup: { tickSeconds: 1, diskMarginBytes: 64 * 1024 * 1024 },
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
  // From here on the hub is not running at all.
  await shore.hub.stop();
  dockerExec(CONTAINER, ['createdb', 'sms']);
  psql(
    `CREATE TABLE parts (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
     INSERT INTO parts SELECT g, 'spare part number ' || g || ' for the main engine', g % 7
       FROM generate_series(1, 20000) g;`,
  );
  ORIGINAL = summary();
  policyFile = await signPolicy(
    shore,
    shore.dir,
    'db-nightly',
    `name: db-nightly
app: ${APP}
service: db
method: { type: postgres, database: sms }
schedule: "0 3 * * *"
timeout: 5m
compression: gzip
retention: { count: 10, age: 30d }
`,
    1,
  );
}, 900_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
});

describe('backups on board with the hub down', () => {
  let first: any;

  it('a signed policy installed on board runs on schedule; verify restores it into a scratch container', async () => {
    await vessel.agent!.stop();
    const env = { TENDER_CLOCK_OFFSET_MS: offsetBefore03(8) };
    const install = await tender(['policy', 'install', policyFile, '--config', vessel.config], env);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('installed policy db-nightly #1');
    const list = await tender(['policy', 'list', '--config', vessel.config]);
    expect(list.stdout).toContain(`db-nightly #1: postgres of ${APP}/db at "0 3 * * *" UTC`);
    vessel.startAgent(env);
    first = await eventuallyOrReport(
      'the scheduled backup',
      async () => (await backups()).find((b) => b.kind === 'scheduled' && b.state === 'ok'),
      report,
      60_000,
      500,
    );
    expect(first.id).toMatch(/^db-nightly-\d{8}T030\d{3}Z$/);
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
    const v = await tender(['backup', 'verify', first.id, '--config', vessel.config]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/verifies: sha256 \w+ matches; restored into a scratch container .*check query answered/);
    // The scratch container is gone again; the live database was not touched.
    expect(summary()).toBe(ORIGINAL);
  }, 180_000);

  it(
    'restore brings the old rows back through the health gate, keeping the changed ' + 'ones as a safety copy',
    async () => {
      psql('DELETE FROM parts WHERE id > 15000; UPDATE parts SET qty = 0;');
      expect(summary()).toBe('15000:0');
      const r = await tender(['backup', 'restore', first.id, '--config', vessel.config]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`restored ${first.id} through the health gate .*kept as db-nightly-`));
      expect(summary()).toBe(ORIGINAL);
      const safety = (await backups()).find((b) => b.kind === 'pre-restore' && b.state === 'ok');
      expect(safety).toBeTruthy();
    },
    120_000,
  );

  it(
    'kill -9 of the agent mid-dump leaves the database serving, no partial file; the ' + 'next start runs it once',
    async () => {
      await vessel.agent!.stop();
      const before = await backups();
      const env = { TENDER_CLOCK_OFFSET_MS: offsetBefore03(3, 1) };
      const killed = vessel.startAgent({ ...env, TENDER_FAULT: 'kill:after:backup-write' });
      await eventuallyOrReport(
        'the agent to die mid-dump',
        async () => killed.proc.signalCode === 'SIGKILL',
        report,
        60_000,
        200,
      );
      expect(summary()).toBe(ORIGINAL);
      const dir = join(vessel.dataDir, 'backups', 'db-nightly');
      expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toHaveLength(1);
      vessel.startAgent(env);
      const rerun = await eventuallyOrReport(
        'the interrupted slot to run once more',
        async () =>
          (await backups()).find(
            (b) => b.kind === 'scheduled' && b.state === 'ok' && !before.some((x) => x.id === b.id),
          ),
        report,
        60_000,
        500,
      );
      const all = await backups();
      expect(all.filter((b) => b.state === 'failed' && b.reason.startsWith('interrupted'))).toHaveLength(1);
      expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toEqual([]);
      expect(existsSync(join(dir, `${rerun.id}.dump.gz`))).toBe(true);
    },
    180_000,
  );

  it(
    'kill -9 of a restore mid-stream leaves the database whole: the next check puts ' + 'the data before it back',
    async () => {
      psql('UPDATE parts SET qty = 1 WHERE id <= 100;');
      const now = summary();
      const r = await tender(['backup', 'restore', first.id, '--config', vessel.config], {
        TENDER_FAULT: 'kill:after:restore-stream',
      });
      expect(r.code).not.toBe(0);
      // pg_restore ran in one transaction that never committed: the rows are as they were, and the
      // running agent finds the dead restore within a tick and puts the safety copy back through the gate.
      expect(summary()).toBe(now);
      const last = await eventuallyOrReport(
        'the interrupted restore to be recovered',
        async () => {
          const r0 = (await listing()).restores[0];
          return r0.state !== 'running' && r0;
        },
        report,
        60_000,
        500,
      );
      expect(last).toMatchObject({ backup: first.id, state: 'undone' });
      expect(last.reason).toMatch(/^interrupted before the restored data was in place/);
      expect(summary()).toBe(now);
      const status = await tender(['status', '--config', vessel.config]);
      expect(status.stdout).toMatch(
        /ALARM +backup db-nightly failed since .*restore of db-nightly-\S+ failed: interrupted/,
      );
    },
    180_000,
  );

  it('kill -9 of a restore after its data was in place: the restore is finished, the new data stays', async () => {
    psql('UPDATE parts SET qty = 2 WHERE id <= 100;');
    const r = await tender(['backup', 'restore', first.id, '--config', vessel.config], {
      TENDER_FAULT: 'kill:after:restore-apply',
    });
    expect(r.code).not.toBe(0);
    expect(summary()).toBe(ORIGINAL);
    const last = await eventuallyOrReport(
      'the restore to be finished by the agent',
      async () => {
        const r0 = (await listing()).restores[0];
        return r0.state !== 'running' && r0;
      },
      report,
      60_000,
      500,
    );
    expect(last).toMatchObject({ backup: first.id, state: 'done', reason: 'completed after an interruption' });
    expect(summary()).toBe(ORIGINAL);
  }, 120_000);

  it('a server off over several slots runs the backup once at start, and status shows the missed slots', async () => {
    await vessel.agent!.stop();
    const before = (await backups()).filter((b) => b.kind === 'scheduled' && b.state === 'ok').length;
    vessel.startAgent({ TENDER_CLOCK_OFFSET_MS: offsetBefore03(-3600, 4) });
    await eventuallyOrReport(
      'one catch-up run',
      async () => (await backups()).filter((b) => b.kind === 'scheduled' && b.state === 'ok').length === before + 1,
      report,
      60_000,
      500,
    );
    await new Promise((r) => setTimeout(r, 3000));
    expect((await backups()).filter((b) => b.kind === 'scheduled' && b.state === 'ok')).toHaveLength(before + 1);
    const status = await tender(['status', '--config', vessel.config]);
    expect(status.stdout).toMatch(
      /ALARM +backup db-nightly missed since .*scheduled backup\(s\) not run at their time/,
    );
  }, 120_000);
});
