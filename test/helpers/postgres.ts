import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A private PostgreSQL cluster for one test file, from Debian's `postgresql` package: initdb into a temp
 * directory, then `postgres` on a free port of 127.0.0.1 with its socket in that directory. PostgreSQL
 * refuses to run as root, and CI runs as root: then the cluster belongs to `nobody` and both programs
 * run through `runuser -u nobody`. Durability is off (fsync, synchronous_commit): the data is thrown away.
 * `stop()` ends the server this started (by its pid) and removes the directory.
 */
export interface PgCluster {
  /** The postmaster's pid (its backends are its children). */
  pid: number;
  /** postgres://postgres@127.0.0.1:PORT/DB */
  url(database?: string): string;
  /** A fresh empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /**
   * A copy of a database (a migrated one: ~0.3 s where CREATE DATABASE and the migrations take ~2 s on a
   * loaded machine); nobody may be connected to the template while it is copied. Returns its URL.
   */
  copyDatabase(templateUrl: string): Promise<string>;
  /** Drops a database, ending its connections (WITH (FORCE)). */
  dropDatabase(url: string): Promise<void>;
  stop(): Promise<void>;
}

const PG_PACKAGE = 'postgresql';

/** initdb and postgres of the newest installed major version, or a failure naming the tool and package. */
export function pgBinaries(): { initdb: string; postgres: string } {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres')))
      return { initdb: join(bin, 'initdb'), postgres: join(bin, 'postgres') };
  }
  throw new Error(
    `initdb / postgres not found under ${root}/*/bin: install them with \`apt-get install -y ${PG_PACKAGE}\`` +
      ' (or run scripts/setup.sh)',
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export async function startPgCluster(opts: { timeoutMs?: number } = {}): Promise<PgCluster> {
  const bin = pgBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'tender-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args]] : [cmd, args];
  if (asRoot) chownSync(dir, 65534, 65534);
  const [initCmd, initArgs] = wrap(bin.initdb, [
    '-D',
    data,
    '-U',
    'postgres',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  try {
    execFileSync(initCmd, initArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${String((err as { stderr?: Buffer }).stderr ?? err)}`, { cause: err });
  }
  const port = await freePort();
  const [cmd, args] = wrap(bin.postgres, [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
    '-c',
    'shared_buffers=32MB',
  ]);
  const proc: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (d) => (log += d));
  proc.stderr!.on('data', (d) => (log += d));
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`postgres exited (${proc.exitCode}): ${log.slice(-2000)}`);
    const c = new pg.Client({ connectionString: url() });
    try {
      await c.connect();
      await c.end();
      break;
    } catch {
      await c.end().catch(() => undefined);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`postgres did not accept connections in time; its log: ${log.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  let n = 0;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: url() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    pid: proc.pid!,
    url,
    async createDatabase() {
      const name = `t_${process.pid}_${++n}_${Math.random().toString(36).slice(2, 8)}`;
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async copyDatabase(templateUrl) {
      const template = new URL(templateUrl).pathname.slice(1);
      const name = `t_${process.pid}_${++n}_${Math.random().toString(36).slice(2, 8)}`;
      await admin(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`);
      return url(name);
    },
    async dropDatabase(dbUrl) {
      await admin(`DROP DATABASE IF EXISTS ${new URL(dbUrl).pathname.slice(1)} WITH (FORCE)`);
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        // SIGINT: PostgreSQL's fast shutdown (rolls back open transactions, closes connections).
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
