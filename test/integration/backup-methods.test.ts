import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeAppContainers } from '../helpers/images.js';
import { enrolVessel, freePort, getBody, startShore, waitServing, type Shore, type Vessel } from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { cleanup, runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { buildBackupServiceImage, dockerExec, publishLocalImages, signPolicy } from '../helpers/backup.js';
import { unique } from '../helpers/names.js';

/**
 * Each backup method against real containers of a real release (the hub stopped once it is live), and the
 * bad inputs: an exec command that fails, writes nothing or hangs; a backup altered on disk; a restore
 * whose data fails the health gate; a disk that fills mid-dump (a 6 MB tmpfs as the backup directory);
 * two runs of one policy at once; policies that must be refused at signing or at install.
 */
const APP = unique('bkm');
const DB = `tender-${APP}-db-1.0.0`;
const FILES = `tender-${APP}-files-1.0.0`;
const TMPFS_BYTES = 6 * 1024 * 1024;
let shore: Shore;
let vessel: Vessel;
let filesPort: number;
let backupDir: string;
let seq = 1;

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return tender([...args, '--config', vessel.config], env, 120_000);
}
async function install(name: string, body: string): Promise<void> {
  const f = await signPolicy(
    shore,
    shore.dir,
    name,
    `name: ${name}\napp: ${APP}\nschedule: "0 3 * * *"\nretention: { count: 5, age: 30d }\n${body}`,
    seq++,
  );
  const r = await cli(['policy', 'install', f]);
  expect(r.code, r.stderr).toBe(0);
}
async function run(policy: string): Promise<{ code: number; b: any; stderr: string }> {
  const r = await cli(['backup', 'run', policy, '--json']);
  return { code: r.code, b: r.code === 0 ? JSON.parse(r.stdout) : undefined, stderr: r.stderr.trim() };
}
const filesIn = (policy: string) => {
  try {
    return readdirSync(join(backupDir, policy));
  } catch {
    return [];
  }
};
const sqlite = (sql: string) => dockerExec(DB, ['sqlite3', '/data/app.db', sql]).trim();
const setPage = (text: string) => dockerExec(FILES, ['sh', '-c', `echo ${text} >/data/page.txt`]);

beforeAll(async () => {
  useFileScope();
  removeAppContainers(APP);
  buildBackupServiceImage(`tender-test/bk-sqlite:${process.pid}`, { sqlite: true });
  buildBackupServiceImage(`tender-test/bk-files:${process.pid}`, { sqlite: false });
  cleanup(() =>
    spawnSync('docker', ['rmi', '-f', `tender-test/bk-sqlite:${process.pid}`, `tender-test/bk-files:${process.pid}`]),
  );
  shore = await startShore();
  // The backup directory is a small filesystem of its own, so a dump can really fill it.
  backupDir = join(shore.dir, 'backups');
  mkdirSync(backupDir);
  let marginBytes = 1024 * 1024;
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', backupDir]).status === 0)
    cleanup(() => spawnSync('umount', ['-l', backupDir]));
  else {
    // No mount here (not root): the disk guard's margin leaves the same room on the real filesystem.
    const s = statfsSync(backupDir);
    marginBytes = Number(s.bavail) * Number(s.bsize) - TMPFS_BYTES;
  }
  vessel = await enrolVessel(shore, `ship-bkm-${process.pid}`, {
    watchSeconds: 0,
    backup: { dir: backupDir, tickSeconds: 1, diskMarginBytes: marginBytes },
  });
  filesPort = await freePort();
  const dbPort = await freePort();
  const compose = join(shore.dir, 'app.yml');
  writeFileSync(
    compose,
    `name: ${APP}
services:
  db:
    image: tender-test/bk-sqlite:${process.pid}
    ports: ["${dbPort}:8080"]
    volumes: ["sqldata:/data"]
    x-tender: { strategy: recreate, health: { http: /health, timeout: 10s, successes: 1 } }
  files:
    image: tender-test/bk-files:${process.pid}
    ports: ["${filesPort}:8080"]
    volumes: ["files:/data"]
    x-tender: { strategy: recreate, health: { http: /health, timeout: 6s, successes: 1 } }
volumes: { sqldata:, files: }
`,
  );
  await vessel.startRouter();
  vessel.startAgent();
  await publishLocalImages(shore, compose, '1.0.0', 1);
  await waitServing(filesPort, 'empty', vessel, 60_000);
  await shore.hub.stop();
  // Crew commands run the backups here; the agent is not needed (nor running) for them.
  await vessel.agent!.stop();
  await install('sql', 'service: db\nmethod: { type: sqlite, path: /data/app.db }');
  await install('files-pause', 'service: files\nmethod: { type: volume, volume: files, quiesce: pause }');
  await install('files-stop', 'service: files\nmethod: { type: volume, volume: files, quiesce: stop }');
  await install(
    'exec-fail',
    'service: db\nmethod: { type: exec, backup: [sh, -c, "echo no access to the data >&2; exit 3"] }',
  );
  await install('exec-empty', 'service: db\nmethod: { type: exec, backup: ["true"] }');
  await install('exec-slow', 'service: db\ntimeout: 2s\nmethod: { type: exec, backup: [sleep, "30"] }');
  await install('exec-ok', 'service: db\nmethod: { type: exec, backup: [sh, -c, "sleep 3; echo the data"] }');
}, 300_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
});

describe('sqlite: the online backup API in the container', () => {
  it('backs up, verifies in a scratch container, and restores the rows through the gate', async () => {
    sqlite("INSERT INTO rows VALUES ('pump 1 overhauled'), ('pump 2 inspected');");
    const { code, b, stderr } = await run('sql');
    expect(code, stderr).toBe(0);
    const v = await cli(['backup', 'verify', b.id]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('sqlite integrity_check ok');
    sqlite("DELETE FROM rows; INSERT INTO rows VALUES ('wrong');");
    const r = await cli(['backup', 'restore', b.id]);
    expect(r.code, r.stderr).toBe(0);
    expect(sqlite('SELECT group_concat(v) FROM rows')).toBe('pump 1 overhauled,pump 2 inspected');
  }, 120_000);

  it('refuses to verify or restore a backup altered on disk, and leaves the data as it is', async () => {
    const { b } = await run('sql');
    const f = readFileSync(join(backupDir, 'sql', `${b.id}.dump.gz`));
    f[Math.floor(f.length / 2)]! ^= 0x01;
    writeFileSync(join(backupDir, 'sql', `${b.id}.dump.gz`), f);
    sqlite("INSERT INTO rows VALUES ('today');");
    const v = await cli(['backup', 'verify', b.id]);
    expect(v.code).toBe(1);
    expect(v.stderr.trim()).toMatch(
      /^tender: backup \S+ does not verify: backup \S+ does not match its checksum .*refused$/,
    );
    const r = await cli(['backup', 'restore', b.id]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not match its checksum/);
    expect(sqlite('SELECT count(*) FROM rows')).toBe('3');
  }, 60_000);
});

describe('volume: a consistent tar with the service paused or stopped', () => {
  it('backs up with the service paused and restores the old page, served again through the router', async () => {
    setPage('chart-v1');
    const { code, b, stderr } = await run('files-pause');
    expect(code, stderr).toBe(0);
    expect(JSON.parse(execFileSync('docker', ['inspect', FILES]).toString())[0].State.Paused).toBe(false);
    const v = await cli(['backup', 'verify', b.id]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/unpacked into a scratch container: 1 top-level entries/);
    setPage('chart-v2');
    await waitServing(filesPort, 'chart-v2', vessel);
    const r = await cli(['backup', 'restore', b.id]);
    expect(r.code, r.stderr).toBe(0);
    await waitServing(filesPort, 'chart-v1', vessel);
  }, 120_000);

  it('backs up with the service stopped, then brings it back through its gate and the router', async () => {
    const { code, stderr } = await run('files-stop');
    expect(code, stderr).toBe(0);
    await waitServing(filesPort, 'chart-v1', vessel);
  }, 60_000);

  it('puts the previous data back when the restored data fails the health gate', async () => {
    // Data that leaves the service unhealthy (a marker file its health check reads).
    dockerExec(FILES, ['sh', '-c', 'echo broken-chart >/data/page.txt; touch /data/broken']);
    const { code, b, stderr } = await run('files-pause');
    expect(code, stderr).toBe(0);
    dockerExec(FILES, ['sh', '-c', 'rm /data/broken; echo good-chart >/data/page.txt']);
    await waitServing(filesPort, 'good-chart', vessel);
    const r = await cli(['backup', 'restore', b.id]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/failed its health gate|failed to become healthy/);
    expect(r.stderr.trim()).toMatch(/the previous data is back \(safety copy files-pause-\S+\)$/);
    await waitServing(filesPort, 'good-chart', vessel);
  }, 120_000);

  it('a disk that fills mid-dump: the partial file is removed and the live service untouched', async () => {
    // Random bytes do not compress: the tar of the volume is larger than the backup filesystem.
    dockerExec(FILES, ['sh', '-c', `head -c ${TMPFS_BYTES + 2 * 1024 * 1024} /dev/urandom >/data/big.bin`]);
    const before = filesIn('files-pause');
    const { code, stderr } = await run('files-pause');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^tender: backup of files-pause failed: (disk guard: free space fell to|disk full after)/);
    expect(filesIn('files-pause')).toEqual(before);
    expect(filesIn('files-pause').some((f) => f.endsWith('.partial'))).toBe(false);
    expect(JSON.parse(execFileSync('docker', ['inspect', FILES]).toString())[0].State.Paused).toBe(false);
    expect(await getBody(filesPort)).toBe('good-chart');
    const status = await vessel.status();
    expect(status.backups.alarms.find((a: any) => a.policy === 'files-pause')).toMatchObject({ kind: 'failed' });
    dockerExec(FILES, ['rm', '/data/big.bin']);
  }, 120_000);
});

describe('exec: a command writing the backup to stdout', () => {
  it('a command that exits non-zero fails the run with its last stderr line; nothing kept', async () => {
    const { code, stderr } = await run('exec-fail');
    expect(code).toBe(1);
    expect(stderr).toBe(
      'tender: backup of exec-fail failed: backup command sh exited with code 3: no access to the data',
    );
    expect(filesIn('exec-fail')).toEqual([]);
  });

  it('a command that writes nothing fails the run', async () => {
    const { code, stderr } = await run('exec-empty');
    expect(code).toBe(1);
    expect(stderr).toBe('tender: backup of exec-empty failed: exec backup wrote nothing');
    expect(filesIn('exec-empty')).toEqual([]);
  });

  it('a dump that outlives its timeout is stopped and leaves no file', async () => {
    const t0 = Date.now();
    const { code, stderr } = await run('exec-slow');
    expect(code).toBe(1);
    expect(stderr).toBe("tender: backup of exec-slow failed: timed out after 2s (the policy's timeout)");
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(filesIn('exec-slow')).toEqual([]);
  });

  it('never runs one policy twice at once, across processes', async () => {
    const [a, b] = await Promise.all([
      run('exec-ok'),
      new Promise((r) => setTimeout(r, 1500)).then(() => run('exec-ok')),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(
      /^tender: policy exec-ok is busy: backup exec-ok-\S+ \(pid \d+\); try again when it ends$/,
    );
  }, 60_000);
});

describe('sealed to a shore key', () => {
  it(
    "export seals a backup to the policy's shore key; only that key opens it, to the " + 'bytes kept on board',
    async () => {
      const keys = join(shore.dir, 'seal');
      const k = await tender(['policy', 'keygen', '--out', keys, '--json']);
      expect(k.code, k.stderr).toBe(0);
      const { key, keyId } = JSON.parse(k.stdout);
      await install(
        'sealed',
        `service: db\nmethod: { type: exec, backup: [sh, -c, "echo engine log; seq 1 ` +
          `5000"] }\nencryptTo: { key: "${key}", keyId: "${keyId}" }`,
      );
      const { b } = await run('sealed');
      const out = join(shore.dir, 'sealed.bin');
      const e = await cli(['backup', 'export', b.id, '--out', out]);
      expect(e.code, e.stderr).toBe(0);
      expect(e.stdout).toContain(`sealed to shore key ${keyId}`);
      const onBoard = readFileSync(join(backupDir, 'sealed', `${b.id}.dump.gz`));
      expect(readFileSync(out).includes(onBoard.subarray(0, 32))).toBe(false);
      const opened = join(shore.dir, 'opened.gz');
      const o = await tender(['backup', 'open', out, '--key', join(keys, 'seal.key'), '--out', opened]);
      expect(o.code, o.stderr).toBe(0);
      expect(readFileSync(opened).equals(onBoard)).toBe(true);
      const other = await tender(['policy', 'keygen', '--out', join(shore.dir, 'seal2')]);
      expect(other.code).toBe(0);
      const bad = await tender([
        'backup',
        'open',
        out,
        '--key',
        join(shore.dir, 'seal2', 'seal.key'),
        '--out',
        join(shore.dir, 'x.gz'),
      ]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/does not open \(altered, truncated, or sealed to another key\)/);
    },
    60_000,
  );
});

describe('policies refused', () => {
  it(
    'at signing: an unknown method, an unparsable schedule, a retention of zero (one ' + 'line each, naming the field)',
    async () => {
      const cases: [string, RegExp][] = [
        ['method: { type: mysqldump }', /method\.type: unknown method "mysqldump"/],
        [
          'method: { type: exec, backup: ["true"] }\nschedule: "every night"',
          /schedule: must be a cron expression of 5 fields/,
        ],
      ];
      for (const [body, why] of cases) {
        const src = join(shore.dir, 'bad.yml');
        writeFileSync(
          src,
          `name: bad\napp: ${APP}\nservice: db\nretention: { count: 1, age: 1d ` +
            `}\n${body.includes('schedule') ? '' : 'schedule: "0 3 * * *"\n'}${body}\n`,
        );
        const r = await tender([
          'policy',
          'sign',
          src,
          '--key',
          shore.releaseKey,
          '--out',
          join(shore.dir, 'bad.json'),
        ]);
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(why);
      }
      writeFileSync(
        join(shore.dir, 'bad.yml'),
        `name: bad\napp: ${APP}\nservice: db\nschedule: "0 3 * * *"\nmethod: { type: ` +
          `exec, backup: ["true"] }\nretention: { count: 0, age: 1d }\n`,
      );
      const r = await tender([
        'policy',
        'sign',
        join(shore.dir, 'bad.yml'),
        '--key',
        shore.releaseKey,
        '--out',
        join(shore.dir, 'bad.json'),
      ]);
      expect(r.stderr.trim()).toBe(
        `tender: ${join(shore.dir, 'bad.yml')}: retention.count: zero keeps no backup; refused`,
      );
    },
  );

  it('at install: a target service that does not exist on board', async () => {
    const f = await signPolicy(
      shore,
      shore.dir,
      'ghost',
      `name: ghost\napp: ${APP}\nservice: nosuch\nschedule: "0 3 * * *"\nretention: { ` +
        `count: 1, age: 1d }\nmethod: { type: exec, backup: ["true"] }\n`,
      seq++,
    );
    const r = await cli(['policy', 'install', f]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      `tender: policy ghost refused: it targets service ${APP}/nosuch, which the live ` +
        `release ${APP}@1.0.0 does not have (db, files)`,
    );
    expect((await cli(['policy', 'list'])).stdout).not.toContain('ghost');
  });
});
