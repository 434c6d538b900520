import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createDockerEngine } from '../../shared/docker.js';
import { createLogger } from '../../shared/log.js';
import { HELPER_LABELS, type BackupDeps } from '../../agent/backup/context.js';
import { removeOrphanHelpers } from '../../agent/backup/restore.js';
import { processStart } from '../../agent/release/journal.js';
import { buildBusyboxImage } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A Docker engine shared with another agent (a second vessel, or an agent in a container whose pids mean
 * nothing here): its backup helpers are not ours to remove, even when their owner's pid looks dead from
 * here. Seen in CI: the install test's agent, in a container on the host engine, removed a helper that
 * another test's `tender backup run` was using ("No such container").
 */
const made: string[] = [];
const docker = (...args: string[]) => execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

afterAll(() => {
  if (made.length) docker('rm', '-f', ...made);
});

describe('backup helpers on a shared engine', () => {
  it("removes only this vessel's helpers whose process died", async () => {
    const mine = unique('bkh');
    const theirs = `${mine}other`;
    const image = buildBusyboxImage({ tag: `tender-test/${mine}:1`, body: 'x\n' });
    const ourDir = tempDir();
    const otherDir = tempDir();
    const dead = '999999999:1';
    const alive = `${process.pid}:${processStart(process.pid)}`;
    const helper = (name: string, labels: Record<string, string>) => {
      const args = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
      made.push(docker('create', '--name', `${mine}-${name}`, ...args, image, 'true').trim());
      return `${mine}-${name}`;
    };
    const legacy = (app: string, owner: string) => {
      const { 'io.tender.backup.home': _home, ...old } = HELPER_LABELS(app, owner, ourDir);
      return old;
    };
    const c = {
      ourDead: helper('our-dead', HELPER_LABELS(mine, dead, ourDir)),
      ourAlive: helper('our-alive', HELPER_LABELS(mine, alive, ourDir)),
      otherDead: helper('other-dead', HELPER_LABELS(theirs, dead, otherDir)),
      otherSameAppDead: helper('other-same-app', HELPER_LABELS(mine, dead, otherDir)),
      legacyOnBoard: helper('legacy-on-board', legacy(mine, dead)),
      legacyElsewhere: helper('legacy-elsewhere', legacy(theirs, dead)),
    };
    const d = {
      dir: ourDir,
      docker: createDockerEngine(),
      services: (app: string) => (app === mine ? { release: '1', services: ['portal'] } : undefined),
      log: createLogger('test', 'silent'),
    } as unknown as BackupDeps;
    await removeOrphanHelpers(d);
    const left = docker('ps', '-a', '--filter', `name=${mine}-`, '--format', '{{.Names}}').trim().split('\n').sort();
    expect(left).toEqual([c.legacyElsewhere, c.otherDead, c.otherSameAppDead, c.ourAlive].sort());
    expect(left).not.toContain(c.ourDead);
    expect(left).not.toContain(c.legacyOnBoard);
    docker('rmi', '-f', `tender-test/${mine}:1`);
  });
});
