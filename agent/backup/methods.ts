import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { TenderError } from '../../shared/errors.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { BackupMethod } from '../../shared/protocol/backup-policy.js';
import { volumeName } from '../release/runtime.js';
import { waitHealthy } from '../release/health-gate.js';
import { processStart } from '../release/journal.js';
import { HELPER_LABELS, type BackupDeps, type BackupTarget } from './context.js';

/**
 * What each backup method does in Docker: take the raw backup (dump), put one back into the live service
 * (apply), check the data answers afterwards (check), and restore one into a throwaway container (scratch)
 * for `tender backup verify`. Commands run through docker exec in the service's own container, or in a
 * helper container started from the service's own image with its volume mounted: nothing is pulled.
 */
export class BackupMethodError extends TenderError {}

// A scratch or restarted database gets this long to accept connections: a cold start over a slow disk.
const READY_TIMEOUT_MS = 90_000;
const READY_POLL_MS = 500;
// A helper waits for commands; TERM ends it at once.
const HELPER_CMD = ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];
const MOUNT = '/tender-volume';
const HELPER_READY_MS = 30_000;

export interface MethodOps {
  /** Whether a restore stops the service first (files replaced under it), or restores into it running. */
  stopsService: boolean;
  dump(d: BackupDeps, t: BackupTarget, out: Writable, signal: AbortSignal, quiesce: Quiesce): Promise<void>;
  apply(d: BackupDeps, t: BackupTarget, input: Readable, signal: AbortSignal): Promise<void>;
  /** After a restore, beyond the release's own gate: the data itself answers. */
  check(d: BackupDeps, t: BackupTarget): Promise<void>;
  /** Restore into a throwaway container and say what answered. */
  scratch(d: BackupDeps, t: BackupTarget, input: Readable, signal: AbortSignal): Promise<string>;
}

/** Record (before acting) that the service is paused or stopped, so a crash can bring it back. */
export type Quiesce = (what: 'pause' | 'stop' | null) => void;

async function run(
  docker: DockerEngine,
  container: string,
  cmd: string[],
  what: string,
  opts: { stdin?: Readable; stdout?: Writable; signal?: AbortSignal } = {},
): Promise<string> {
  const r = await docker.exec(container, cmd, opts);
  if (opts.signal?.aborted) throw new BackupMethodError(`${what}: stopped`);
  if (r.exitCode !== 0) {
    // The engine reports an exec it could not start (126, 127) on the attached stream, not on stderr.
    const said = r.stderr.trim() || (r.exitCode >= 126 && !opts.stdout ? r.stdout.toString().trim() : '');
    const last = said.split('\n').pop() ?? '';
    throw new BackupMethodError(`${what} exited with code ${r.exitCode}${last ? `: ${last}` : ''}`);
  }
  return r.stdout.toString();
}

/** Retry `fn` until it resolves or the deadline passes; the last error says why. */
async function until<T>(what: string, fn: () => Promise<T>, timeoutMs = READY_TIMEOUT_MS): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end)
        throw new BackupMethodError(`${what} not ready in ${timeoutMs / 1000}s: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
}

/** A container from the service's own image, for the length of `fn`, then removed with its volumes. */
export async function withHelper<T>(
  d: BackupDeps,
  t: BackupTarget,
  opts: { mounts: { source: string; target: string; readOnly: boolean; kind: 'volume' | 'bind' }[]; serve?: boolean },
  fn: (id: string) => Promise<T>,
): Promise<T> {
  const name = `tender-backup-${t.app}-${t.service}-${randomBytes(4).toString('hex')}`;
  const id = await d.docker.createContainer({
    name,
    image: t.spec.imageId,
    labels: HELPER_LABELS(t.app, `${process.pid}:${processStart(process.pid)}`, d.dir),
    // A scratch server runs as the service does (its env and command); a helper only runs a shell.
    env: opts.serve ? t.spec.environment : {},
    command: opts.serve ? t.spec.command : [],
    ...(opts.serve ? {} : { entrypoint: HELPER_CMD }),
    ports: [],
    mounts: opts.mounts,
    restart: 'no',
    healthcheck: null,
  });
  try {
    await d.docker.startContainer(id);
    // An exec sent the moment a container starts can find its process not running yet (exit 126 on a
    // loaded machine): the helper must answer a no-op first, since what `fn` streams in cannot be re-sent.
    await until('the helper container', () => run(d.docker, id, ['true'], 'a no-op in the helper'), HELPER_READY_MS);
    return await fn(id);
  } finally {
    await d.docker.removeScratch(id).catch(() => undefined);
  }
}

async function mountsOf(d: BackupDeps, t: BackupTarget) {
  const detail = await d.docker.containerDetail(t.container);
  if (!detail) throw new BackupMethodError(`container ${t.container} of ${t.app}/${t.service} is gone`);
  return detail.mounts;
}

/** Stop the service's container; start it again (and route to its new port); its release's health gate. */
export async function stopService(d: BackupDeps, t: BackupTarget): Promise<void> {
  await d.docker.stopContainer(t.container, 30);
}
export async function startService(d: BackupDeps, t: BackupTarget): Promise<void> {
  await d.docker.startContainer(t.container);
  await d.reroute?.(t);
}
export async function gateService(d: BackupDeps, t: BackupTarget): Promise<void> {
  await waitHealthy({
    service: t.service,
    release: t.release,
    gate: t.spec.gate,
    inspect: () => d.docker.inspectContainer(t.container),
  });
}

function postgres(m: Extract<BackupMethod, { type: 'postgres' }>): MethodOps {
  const psql = (db: string) => ['psql', '-X', '-U', m.user, '-d', db, '-v', 'ON_ERROR_STOP=1', '-tAc'];
  const checkOn = (d: BackupDeps, container: string) =>
    until('database', () => run(d.docker, container, [...psql(m.database), m.checkQuery], 'check query'));
  return {
    stopsService: false,
    async dump(d, t, out, signal) {
      // -Z0: uncompressed custom format, so consecutive dumps share content-defined chunks ashore.
      await run(d.docker, t.container, ['pg_dump', '-Fc', '-Z0', '-U', m.user, m.database], 'pg_dump', {
        stdout: out,
        signal,
      });
    },
    async apply(d, t, input, signal) {
      // One transaction: a restore cut short (a kill, a bad archive) leaves the database as it was.
      await run(
        d.docker,
        t.container,
        ['pg_restore', '-U', m.user, '-d', m.database, '--clean', '--if-exists', '--single-transaction', '--no-owner'],
        'pg_restore',
        { stdin: input, signal },
      );
    },
    async check(d, t) {
      await checkOn(d, t.container);
    },
    async scratch(d, t, input, signal) {
      return withHelper(d, t, { mounts: [], serve: true }, async (id) => {
        await until('scratch database', () => run(d.docker, id, [...psql('postgres'), 'SELECT 1'], 'psql'));
        if (m.database !== 'postgres') await run(d.docker, id, ['createdb', '-U', m.user, m.database], 'createdb');
        await run(
          d.docker,
          id,
          ['pg_restore', '-U', m.user, '-d', m.database, '--no-owner', '--exit-on-error'],
          'pg_restore',
          {
            stdin: input,
            signal,
          },
        );
        const answer = (await checkOn(d, id)).trim();
        const answered = JSON.stringify(answer.slice(0, 80));
        return `restored into a scratch container of ${t.spec.imageRef}; check query answered ${answered}`;
      });
    },
  };
}

function sqlite(m: Extract<BackupMethod, { type: 'sqlite' }>): MethodOps {
  return {
    stopsService: true,
    async dump(d, t, out, signal) {
      // The online backup API copies a consistent snapshot while the service writes; beside the file,
      // on the volume, then streamed out and removed.
      const tmp = `${m.path}.tender-backup-${randomBytes(4).toString('hex')}`;
      try {
        await run(d.docker, t.container, ['sqlite3', m.path, `.backup '${tmp}'`], 'sqlite3 .backup', { signal });
        await run(d.docker, t.container, ['cat', tmp], 'reading the sqlite backup', { stdout: out, signal });
      } finally {
        await d.docker.exec(t.container, ['rm', '-f', tmp]).catch(() => undefined);
      }
    },
    async apply(d, t, input, signal) {
      const mounts = await mountsOf(d, t);
      await withHelper(d, t, { mounts }, (id) =>
        run(
          d.docker,
          id,
          // The old WAL must not be replayed onto the new file; the new file lands by rename (whole or not).
          [
            'sh',
            '-c',
            'rm -f "$1-wal" "$1-shm" "$1.tender-restore" && cat >"$1.tender-restore" && mv "$1.tender-restore" "$1"',
            'sh',
            m.path,
          ],
          'writing the sqlite file',
          { stdin: input, signal },
        ),
      );
    },
    async check(d, t) {
      const ok = await until('sqlite', () =>
        run(d.docker, t.container, ['sqlite3', m.path, 'PRAGMA quick_check'], 'sqlite3'),
      );
      if (ok.trim() !== 'ok') throw new BackupMethodError(`sqlite quick_check says ${ok.trim().slice(0, 200)}`);
    },
    async scratch(d, t, input, signal) {
      return withHelper(d, t, { mounts: [] }, async (id) => {
        const ok = await run(
          d.docker,
          id,
          ['sh', '-c', 'cat >/tmp/tender-verify.db && sqlite3 /tmp/tender-verify.db "PRAGMA integrity_check"'],
          'sqlite integrity check',
          { stdin: input, signal },
        );
        if (ok.trim() !== 'ok') throw new BackupMethodError(`sqlite integrity_check says ${ok.trim().slice(0, 200)}`);
        return 'restored into a scratch container; sqlite integrity_check ok';
      });
    },
  };
}

function volume(m: Extract<BackupMethod, { type: 'volume' }>): MethodOps {
  const mountOf = async (d: BackupDeps, t: BackupTarget, readOnly: boolean) => {
    const name = volumeName(t.app, m.volume);
    if (!(await mountsOf(d, t)).some((x) => x.kind === 'volume' && x.source === name))
      throw new BackupMethodError(`service ${t.app}/${t.service} does not mount volume ${m.volume}`);
    return [{ source: name, target: MOUNT, readOnly, kind: 'volume' as const }];
  };
  return {
    stopsService: true,
    async dump(d, t, out, signal, quiesce) {
      const mounts = await mountOf(d, t, true);
      // The helper starts before the service is frozen, so the freeze lasts only as long as the tar.
      await withHelper(d, t, { mounts }, async (id) => {
        quiesce(m.quiesce);
        if (m.quiesce === 'pause') await d.docker.pauseContainer(t.container);
        else await stopService(d, t);
        try {
          await run(d.docker, id, ['tar', '-c', '-C', MOUNT, '.'], 'tar of the volume', { stdout: out, signal });
        } finally {
          if (m.quiesce === 'pause') await d.docker.unpauseContainer(t.container);
          else await startService(d, t);
        }
      });
      if (m.quiesce === 'stop') await gateService(d, t);
      quiesce(null);
    },
    async apply(d, t, input, signal) {
      const mounts = await mountOf(d, t, false);
      await withHelper(d, t, { mounts }, (id) =>
        run(
          d.docker,
          id,
          ['sh', '-c', `rm -rf ${MOUNT}/* ${MOUNT}/.[!.]* ${MOUNT}/..?*; exec tar -x -C ${MOUNT}`],
          'unpacking the volume',
          { stdin: input, signal },
        ),
      );
    },
    async check() {
      /* the release's gate is the check */
    },
    async scratch(d, t, input, signal) {
      return withHelper(d, t, { mounts: [] }, async (id) => {
        const n = await run(
          d.docker,
          id,
          [
            'sh',
            '-c',
            'mkdir -p /tmp/tender-verify && tar -x -C /tmp/tender-verify && ls -A /tmp/tender-verify | wc -l',
          ],
          'unpacking into a scratch container',
          { stdin: input, signal },
        );
        return `unpacked into a scratch container: ${n.trim()} top-level entries`;
      });
    },
  };
}

function exec(m: Extract<BackupMethod, { type: 'exec' }>): MethodOps {
  const restoreCmd = () => {
    if (!m.restore) throw new BackupMethodError('the policy has no restore command (method.restore)');
    return m.restore;
  };
  return {
    stopsService: false,
    async dump(d, t, out, signal) {
      await run(d.docker, t.container, m.backup, `backup command ${m.backup[0]}`, { stdout: out, signal });
    },
    async apply(d, t, input, signal) {
      await run(d.docker, t.container, restoreCmd(), `restore command ${restoreCmd()[0]}`, { stdin: input, signal });
    },
    async check() {
      /* the release's gate is the check */
    },
    async scratch(d, t, input, signal) {
      if (!m.restore) {
        input.resume();
        await new Promise((r) => input.on('end', r));
        return 'no restore command in the policy: checksum and decompression checked only';
      }
      return withHelper(d, t, { mounts: [], serve: true }, async (id) => {
        await until('scratch container', async () => {
          const info = await d.docker.inspectContainer(id);
          if (!info?.running) throw new Error(`scratch container ${info?.status ?? 'gone'}`);
        });
        await run(d.docker, id, m.restore!, `restore command ${m.restore![0]}`, { stdin: input, signal });
        return 'restore command succeeded in a scratch container';
      });
    },
  };
}

export function methodOps(m: BackupMethod): MethodOps {
  switch (m.type) {
    case 'postgres':
      return postgres(m);
    case 'sqlite':
      return sqlite(m);
    case 'volume':
      return volume(m);
    case 'exec':
      return exec(m);
  }
}
