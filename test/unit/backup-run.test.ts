import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parsePolicyFile } from '../../shared/protocol/backup-policy.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import type { DockerEngine } from '../../shared/docker.js';
import { BackupBusyError, openBackupDb } from '../../agent/backup/backup-db.js';
import { installPolicy } from '../../agent/backup/board-policies.js';
import type { BackupDeps } from '../../agent/backup/context.js';
import { recoverBackups, restoreBackup } from '../../agent/backup/restore.js';
import { runBackup } from '../../agent/backup/run-backup.js';
import { backupTick } from '../../agent/backup/scheduler.js';
import { verifyBackup } from '../../agent/backup/verify.js';
import { processStart } from '../../agent/release/journal.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The backup runner, scheduler and restore journal against a fake engine: one container whose "data" is
 * a buffer, and exec commands that dump it, load it, fail, write nothing or hang. The fake throws on
 * anything it does not implement, so a test cannot pass by a call it did not expect.
 */
function fakeDocker(state: { data: Buffer; running: boolean }): DockerEngine {
  const impl: Partial<DockerEngine> = {
    async exec(_id, cmd, opts = {}) {
      const out = opts.stdout as Writable | undefined;
      const readAll = async (s: Readable) => {
        const parts: Buffer[] = [];
        for await (const c of s) parts.push(c as Buffer);
        return Buffer.concat(parts);
      };
      switch (cmd[0]) {
        case 'dump':
          for (let i = 0; i < state.data.length && !opts.signal?.aborted; i += 65536) {
            if (!out!.write(state.data.subarray(i, i + 65536)))
              // Like the real engine's exec: the listener comes off the signal when the wait ends.
              await new Promise<void>((r) => {
                const done = () => (opts.signal?.removeEventListener('abort', done), out!.off('drain', done), r());
                out!.once('drain', done);
                opts.signal?.addEventListener('abort', done, { once: true });
              });
          }
          return { exitCode: 0, stderr: '', stdout: Buffer.alloc(0) };
        case 'fail':
          return { exitCode: 3, stderr: 'pg_dump: error: permission denied for table rows\n', stdout: Buffer.alloc(0) };
        case 'quiet':
          return { exitCode: 0, stderr: '', stdout: Buffer.alloc(0) };
        case 'hang':
          await new Promise((r) => opts.signal!.addEventListener('abort', r));
          return { exitCode: -1, stderr: '', stdout: Buffer.alloc(0) };
        case 'load':
          state.data = await readAll(opts.stdin!);
          return { exitCode: 0, stderr: '', stdout: Buffer.alloc(0) };
        default:
          throw new Error(`fake docker: no command ${cmd[0]}`);
      }
    },
    async inspectContainer(id) {
      return {
        id,
        name: id,
        labels: {},
        running: state.running,
        status: state.running ? 'running' : 'exited',
        exitCode: 0,
        restartCount: 0,
        startedAt: '',
        // Data that starts with POISON makes the service unhealthy: a restore of it fails its gate.
        health: state.data.subarray(0, 6).toString() === 'POISON' ? 'unhealthy' : 'healthy',
        ports: {},
        image: 'sha256:x',
      };
    },
  };
  return new Proxy(impl as DockerEngine, {
    get(t, k) {
      if (k in t) return t[k as keyof DockerEngine];
      throw new Error(`fake docker: ${String(k)} is not implemented`);
    },
  });
}

const POLICY = (cmd: string, extra = '', restore = '[load]') => `
name: files
app: sms
service: db
method: { type: exec, backup: [${cmd}], restore: ${restore} }
schedule: "0 3 * * *"
timeout: 1s
compression: gzip
retention: { count: 3, age: 30d }
${extra}`;

function setup(opts: { cmd?: string; extra?: string; data?: string; restore?: string } = {}) {
  const keys = makeKeys(3, 1);
  const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys), keys.root));
  const dir = tempDir('tender-backup-unit-');
  const db = openBackupDb(`${dir}/backups.db`);
  const state = { data: Buffer.from(opts.data ?? 'rows v1\n'.repeat(20_000)), running: true };
  let now = Date.parse('2026-03-01T12:00:00Z');
  const events: { type: string; data: Record<string, unknown> }[] = [];
  let free = 10 * 1024 ** 3;
  const d: BackupDeps = {
    vessel: 'ship-a',
    db,
    docker: fakeDocker(state),
    root: () => root,
    dir: `${dir}/backups`,
    diskMarginBytes: 1024 * 1024,
    now: () => now,
    event: (type, data) => events.push({ type, data }),
    log: pino({ level: 'silent' }),
    locate: (app, service) => ({
      app,
      service,
      release: '1.0.0',
      container: 'live',
      spec: { gate: { type: 'docker', timeoutMs: 2000 } } as never,
    }),
    services: () => ({ release: '1.0.0', services: ['db'] }),
    freeBytes: () => free,
  };
  const install = (text: string, sequence = 1) =>
    installPolicy(
      db,
      root,
      envelopeBytes(signEnvelope('policy', parsePolicyFile(text, 'p.yml', { sequence }), [keys.release[0]!])),
      { vessel: 'ship-a', services: d.services, now: now },
    );
  install(POLICY(opts.cmd ?? 'dump', opts.extra, opts.restore));
  return {
    d,
    db,
    dir,
    state,
    events,
    install,
    setNow: (t: number) => (now = t),
    setFree: (n: number) => (free = n),
    files: () => (existsSync(`${dir}/backups/files`) ? readdirSync(`${dir}/backups/files`) : []),
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A pid that is not running any more, and the start time it had. */
async function deadPid(): Promise<{ pid: number; start: string }> {
  const p = spawn('true');
  const start = processStart(p.pid!);
  await new Promise((r) => p.on('exit', r));
  return { pid: p.pid!, start: start || 'gone' };
}

describe('a backup run', () => {
  it('writes the compressed dump, records its sha256 and size, and is an event', async () => {
    const { d, events, files } = setup();
    const b = await runBackup(d, 'files', { kind: 'manual' });
    expect(b.state).toBe('ok');
    expect(files()).toEqual([`${b.id}.dump.gz`]);
    expect(sha(readFileSync(b.file))).toBe(b.sha256);
    expect(b.rawBytes).toBe(160_000);
    expect(b.bytes).toBe(readFileSync(b.file).byteLength);
    const e = events.find((x) => x.type === 'backup.done')!;
    expect(e.data).toMatchObject({ policy: 'files', id: b.id, result: 'ok', bytes: b.bytes, sha256: b.sha256 });
    expect(typeof e.data.seconds).toBe('number');
  });

  it('fails when the command exits non-zero, saying its last stderr line; no file is left', async () => {
    const { d, events, files, db } = setup({ cmd: 'fail' });
    await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(
      'backup of files failed: backup command fail exited with code 3: pg_dump: error: ' +
        'permission denied for table rows',
    );
    expect(files()).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'backup.failed', data: { result: 'failed' } });
    expect(db.alarms()).toMatchObject([{ policy: 'files', kind: 'failed' }]);
  });

  it('fails when the command writes nothing', async () => {
    const { d, files } = setup({ cmd: 'quiet' });
    await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow('exec backup wrote nothing');
    expect(files()).toEqual([]);
  });

  it("stops a dump at the policy's timeout and removes the partial file", async () => {
    const { d, files } = setup({ cmd: 'hang' });
    await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(
      "timed out after 1s (the policy's timeout)",
    );
    expect(files()).toEqual([]);
  });

  it('refuses to start when the disk is short of the margin, and says how short', async () => {
    const { d, files, setFree, events } = setup();
    setFree(512 * 1024);
    await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(
      /disk guard: 0\.52 MB free under .*, a backup needs 1\.05 MB/,
    );
    expect(files()).toEqual([]);
    expect(events.at(-1)!.type).toBe('backup.refused');
  });

  it('stops when free space falls under the margin while writing, and removes the partial file', async () => {
    const { d, files, setFree, state } = setup({ data: 'x' });
    // Incompressible data, so the file grows past the check interval.
    state.data = randomBytes(3 * 1024 * 1024);
    let calls = 0;
    d.freeBytes = () => (++calls === 1 ? 10 * 1024 ** 3 : 1000);
    await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(
      /disk guard: free space fell to 0\.00 MB \(margin 1\.05 MB\)/,
    );
    expect(files()).toEqual([]);
    setFree(0);
  });

  it('is refused while another live process holds the policy, and taken over from a dead one', async () => {
    const { d, db } = setup();
    const other = spawn('sleep', ['30']);
    try {
      db.db
        .prepare('INSERT INTO locks (policy, what, pid, pid_start, at) VALUES (?, ?, ?, ?, ?)')
        .run('files', 'backup files-x', other.pid, processStart(other.pid!), 0);
      await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(BackupBusyError);
      await expect(runBackup(d, 'files', { kind: 'manual' })).rejects.toThrow(
        `policy files is busy: backup files-x (pid ${other.pid}); try again when it ends`,
      );
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.on('exit', r));
    }
    expect((await runBackup(d, 'files', { kind: 'manual' })).state).toBe('ok');
  });

  it('keeps at most the retention count, removing the oldest files', async () => {
    const { d, setNow, files, db } = setup();
    const ids = [];
    for (let i = 0; i < 5; i++) {
      setNow(Date.parse(`2026-03-0${i + 1}T04:00:00Z`));
      ids.push((await runBackup(d, 'files', { kind: 'manual' })).id);
    }
    expect(db.goodBackups('files').map((b) => b.id)).toEqual(ids.slice(2).reverse());
    expect(files().sort()).toEqual(ids.slice(2).map((id) => `${id}.dump.gz`));
  });
});

describe('the backup schedule on board', () => {
  it(
    'runs at its slot once, runs a missed slot once at start with an alarm, and ' +
      'never re-runs when the clock goes back',
    async () => {
      const { d, setNow, db, events } = setup();
      setNow(Date.parse('2026-03-01T12:00:00Z'));
      expect(await backupTick(d)).toEqual([]);
      setNow(Date.parse('2026-03-02T03:00:05Z'));
      expect(await backupTick(d)).toEqual(['files']);
      expect(await backupTick(d)).toEqual([]);
      // Off for three days: one run at start, not three; the missed slots are an alarm and an event.
      setNow(Date.parse('2026-03-05T09:00:00Z'));
      expect(await backupTick(d)).toEqual(['files']);
      expect(await backupTick(d)).toEqual([]);
      expect(events.find((e) => e.type === 'backup.missed')!.data).toMatchObject({ policy: 'files', slots: 3 });
      expect(db.alarms()).toMatchObject([{ policy: 'files', kind: 'missed' }]);
      // The clock set back a day: nothing re-runs.
      setNow(Date.parse('2026-03-04T03:00:05Z'));
      expect(await backupTick(d)).toEqual([]);
      setNow(Date.parse('2026-03-05T03:00:05Z'));
      expect(await backupTick(d)).toEqual([]);
      // The next slot on time clears the missed alarm.
      setNow(Date.parse('2026-03-06T03:00:05Z'));
      expect(await backupTick(d)).toEqual(['files']);
      expect(db.alarms()).toEqual([]);
      expect(db.goodBackups('files')).toHaveLength(3);
    },
  );

  it('claims a slot whose run fails, so it is an alarm and not retried on every tick', async () => {
    const { d, setNow, db } = setup({ cmd: 'fail' });
    setNow(Date.parse('2026-03-02T03:00:05Z'));
    await backupTick(d);
    await backupTick(d);
    expect(db.backups().filter((b) => b.state === 'failed')).toHaveLength(1);
    expect(db.alarms()).toMatchObject([{ kind: 'failed' }]);
  });
});

describe('restore and verify', () => {
  it('puts the old data back, keeping what was there as a safety copy', async () => {
    const { d, state, db } = setup();
    const b = await runBackup(d, 'files', { kind: 'manual' });
    const old = state.data;
    state.data = Buffer.from('rows v2\n');
    const r = await restoreBackup(d, b.id, 'crew');
    expect(state.data.equals(old)).toBe(true);
    expect(db.restore(r.restore)!.state).toBe('done');
    const safety = db.backup(r.safety!)!;
    expect(safety.kind).toBe('pre-restore');
    expect(safety.rawBytes).toBe(8);
  });

  it('puts the previous data back when the restored service fails its health gate', async () => {
    const { d, state, db, events } = setup({ data: 'POISON and rows' });
    const b = await runBackup(d, 'files', { kind: 'manual' });
    state.data = Buffer.from('good rows of today');
    await expect(restoreBackup(d, b.id, 'crew')).rejects.toThrow(
      new RegExp(
        'restore of files-\\S+ failed: db@1\\.0\\.0 failed its health gate: docker reports unhealthy; ' +
          'the previous data is back \\(safety copy files-',
      ),
    );
    expect(state.data.toString()).toBe('good rows of today');
    expect(db.recentRestores(1)[0]!.state).toBe('undone');
    expect(events.map((e) => e.type)).toContain('restore.failed');
  });

  it('refuses to verify or restore a backup altered on disk, changing nothing', async () => {
    const { d, state, db } = setup();
    const b = await runBackup(d, 'files', { kind: 'manual' });
    const f = readFileSync(b.file);
    f[f.length - 10]! ^= 0xff;
    writeFileSync(b.file, f);
    state.data = Buffer.from('today');
    await expect(verifyBackup(d, b.id)).rejects.toThrow(
      /does not match its checksum .*altered or damaged on disk; refused/,
    );
    await expect(restoreBackup(d, b.id, 'crew')).rejects.toThrow(/does not match its checksum/);
    expect(state.data.toString()).toBe('today');
    expect(db.recentRestores()).toEqual([]);
  });

  it('verifies a good backup without a restore command by its checksum and a full decompression', async () => {
    const { d, db } = setup({ restore: 'null' });
    const b = await runBackup(d, 'files', { kind: 'manual' });
    const r = await verifyBackup(d, b.id);
    expect(r).toMatchObject({ id: b.id, sha256: b.sha256, rawBytes: 160_000 });
    expect(r.scratch).toBe('no restore command in the policy: checksum and decompression checked only');
    expect(db.backup(b.id)!.verifiedAt).not.toBeNull();
    await expect(restoreBackup(d, b.id, 'crew')).rejects.toThrow(/policy files has no restore command/);
  });
});

describe('recovery after a kill -9', () => {
  it('removes the partial file of an interrupted run and gives its slot back, so it runs once at start', async () => {
    const { d, db, setNow, dir } = setup();
    const dead = await deadPid();
    const slot = Date.parse('2026-03-02T03:00:00Z');
    const prev = db.policy('files')!.lastSlot;
    db.beginBackup({
      id: 'files-cut',
      policy: 'files',
      policySequence: 1,
      method: 'exec',
      kind: 'scheduled',
      file: `${dir}/backups/files/files-cut.dump.gz.partial`,
      compression: 'gzip',
      at: slot,
      slot,
      prevSlot: prev,
    });
    mkdirSync(`${dir}/backups/files`, { recursive: true });
    writeFileSync(`${dir}/backups/files/files-cut.dump.gz.partial`, 'half a dump');
    db.db.prepare('UPDATE backups SET pid = ?, pid_start = ?').run(dead.pid, dead.start);
    db.db.prepare('UPDATE locks SET pid = ?, pid_start = ?').run(dead.pid, dead.start);
    await recoverBackups(d);
    expect(existsSync(`${dir}/backups/files/files-cut.dump.gz.partial`)).toBe(false);
    expect(db.backup('files-cut')!.state).toBe('failed');
    expect(db.policy('files')!.lastSlot).toBe(prev);
    setNow(slot + 60_000);
    expect(await backupTick(d)).toEqual(['files']);
  });

  it('puts the safety copy back when the restore was cut before its apply was marked done', async () => {
    const { d, db, state } = setup();
    const b = await runBackup(d, 'files', { kind: 'manual' });
    state.data = Buffer.from('data of today');
    const safety = await runBackup(d, 'files', { kind: 'pre-restore' });
    const id = db.beginRestore(b.id, 'files', 'crew', ['safety', 'apply', 'gate']);
    db.setSafety(id, safety.id);
    db.stepDone(id, 0);
    // The cut came mid-apply: half of the restore had landed.
    state.data = Buffer.from('rows v1\nrows');
    const dead = await deadPid();
    db.db.prepare('UPDATE restores SET pid = ?, pid_start = ?').run(dead.pid, dead.start);
    db.db.prepare('UPDATE locks SET pid = ?, pid_start = ?').run(dead.pid, dead.start);
    await recoverBackups(d);
    expect(state.data.toString()).toBe('data of today');
    expect(db.restore(id)!.state).toBe('undone');
  });

  it('finishes a restore cut after its apply was marked done: the new data stays, through the gate', async () => {
    const { d, db, state } = setup();
    const b = await runBackup(d, 'files', { kind: 'manual' });
    const restored = state.data;
    const safety = await runBackup(d, 'files', { kind: 'pre-restore' });
    const id = db.beginRestore(b.id, 'files', 'crew', ['safety', 'apply', 'gate']);
    db.setSafety(id, safety.id);
    db.stepDone(id, 0);
    db.stepDone(id, 1);
    const dead = await deadPid();
    db.db.prepare('UPDATE restores SET pid = ?, pid_start = ?').run(dead.pid, dead.start);
    await recoverBackups(d);
    expect(state.data.equals(restored)).toBe(true);
    expect(db.restore(id)!.state).toBe('done');
  });
});
