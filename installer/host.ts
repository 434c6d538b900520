import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  lchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { isSea } from 'node:sea';
import { TenderError, errorMessage } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { createDockerEngine, LABEL_PREFIX } from '../shared/docker.js';
import { DEFAULT_CONSOLE_LISTEN } from '../agent/config.js';
import { enrolFromFile, enrolOnline } from '../agent/enrol.js';
import { generatePassword, hashPassword } from '../agent/crew/password.js';
import { routerRequest } from '../agent/router/control.js';
import { createOpsToken } from '../hub/ops-tokens.js';
import { DEFAULT_HUB_LISTEN } from '../hub/commands/hub-commands.js';
import { DOCKER_GROUP, PATHS, SERVICE_USER, type DirFacts, type HostFacts, type Step } from './install-plan.js';
import { UNIT_NAMES, type UnitName } from './unit-files.js';

export class InstallStepError extends TenderError {}

// A service that is still running this long after its start has got past reading its config and state.
const STAY_UP_MS = 3_000;
// The router restores its routes (binding every app port) before it opens its control socket.
const ROUTER_READY_MS = 20_000;
// The hub opens its database and migrates it before it answers /ready.
const HUB_READY_MS = 30_000;
const POLL_MS = 250;

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; status?: number; code?: string };
    const why = e.stderr?.trim().split('\n')[0] || e.code || `exit code ${e.status}`;
    throw new InstallStepError(`${cmd} ${args.join(' ')}: ${why}`);
  }
}

function getent(db: 'passwd' | 'group', key: string): string[] | null {
  try {
    return execFileSync('getent', [db, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(':');
  } catch {
    return null;
  }
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function statOf(path: string): DirFacts | null {
  try {
    const st = statSync(path);
    return { uid: st.uid, mode: st.mode & 0o7777 };
  } catch {
    return null;
  }
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function groupsOf(user: string): string[] {
  try {
    return execFileSync('id', ['-nG', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(/\s+/);
  } catch {
    return [];
  }
}

/** `systemctl is-active` or `is-enabled` of every tender unit: one line per unit, in order. */
function unitsAre(
  verb: 'is-active' | 'is-enabled',
  want: string,
  systemd: boolean,
): Partial<Record<UnitName, boolean>> {
  if (!systemd) return {};
  let out: string;
  try {
    out = execFileSync('systemctl', [verb, ...UNIT_NAMES], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? ''); // non-zero when any one is not
  }
  const states = out.trim().split('\n');
  return Object.fromEntries(UNIT_NAMES.map((u, i) => [u, states[i] === want]));
}

/** What the host looks like now, as far as installing Tender is concerned. */
export function readHostFacts(): HostFacts {
  const systemd = existsSync('/run/systemd/system');
  const user = getent('passwd', SERVICE_USER);
  let enrolled: HostFacts['enrolled'] = null;
  const config = readText(PATHS.agentConfig);
  if (config !== undefined) {
    let vessel = '(unreadable config)';
    try {
      vessel = String((JSON.parse(config) as { vesselName?: unknown }).vesselName ?? vessel);
    } catch {
      /* the agent says what is wrong with it; the installer leaves enrolment alone */
    }
    enrolled = { vessel };
  }
  return {
    root: process.getuid?.() === 0,
    systemd,
    docker: { socket: isSocket(PATHS.dockerSocket), group: getent('group', DOCKER_GROUP) !== null },
    user: user ? { uid: Number(user[2]), groups: groupsOf(SERVICE_USER) } : null,
    group: getent('group', SERVICE_USER) !== null,
    self: isSea() ? { path: process.execPath, digest: sha256File(process.execPath) } : null,
    installed: existsSync(PATHS.executable) ? sha256File(PATHS.executable) : null,
    packaged: existsSync('/var/lib/dpkg/info/tender.list'),
    units: Object.fromEntries(
      UNIT_NAMES.map((u) => [u, readText(join(PATHS.unitDir, u))]).filter(([, t]) => t !== undefined),
    ),
    active: unitsAre('is-active', 'active', systemd),
    enabled: unitsAre('is-enabled', 'enabled', systemd),
    enrolled,
    dirs: { etc: statOf(PATHS.etc), data: statOf(PATHS.data), hubData: statOf(PATHS.hubData) },
    hubRoot: existsSync(PATHS.hubRoot),
    hubDatabase: existsSync(join(PATHS.hubData, 'hub.db')),
  };
}

/** Shown once at the end: what a step made that nobody can read back later (passwords, tokens). */
export interface StepOutput {
  vessel?: string;
  consoleListen?: string;
  consolePassword?: string;
  adminToken?: string;
}

function chownTree(path: string, uid: number, gid: number): void {
  lchownSync(path, uid, gid);
  if (!statSync(path).isDirectory()) return;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) chownTree(p, uid, gid);
    else lchownSync(p, uid, gid);
  }
}

/** Copy the executable beside its destination and rename it into place: a running copy keeps its file. */
function installExecutable(from: string, to: string): void {
  const tmp = join(dirname(to), `.tender.${process.pid}.tmp`);
  try {
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, tmp);
    chmodSync(tmp, 0o755);
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, to);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

function journalTail(unit: UnitName): string {
  try {
    return execFileSync('journalctl', ['-u', unit, '-n', '15', '--no-pager', '-o', 'cat'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return '(no journal)';
  }
}

function unitState(unit: UnitName): { state: string; restarts: string } {
  const props = Object.fromEntries(
    run('systemctl', ['show', unit, '--property=ActiveState', '--property=NRestarts'])
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { state: props.ActiveState ?? '', restarts: props.NRestarts ?? '' };
}

async function waitStaysUp(unit: UnitName): Promise<void> {
  const first = unitState(unit);
  const end = Date.now() + STAY_UP_MS;
  for (;;) {
    const now = unitState(unit);
    if (now.state !== 'active' || now.restarts !== first.restarts)
      throw new InstallStepError(
        `${unit} did not stay up (${now.state}); its last lines:\n${journalTail(unit)}\n(journalctl -u ${unit})`,
      );
    if (Date.now() > end) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function waitFor(what: string, unit: UnitName, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      if (await ok()) return;
    } catch (err) {
      last = errorMessage(err);
    }
    if (Date.now() > end)
      throw new InstallStepError(
        `${what} within ${ms / 1000}s${last ? ` (${last})` : ''}; ${unit} said:\n${journalTail(unit)}`,
      );
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function hubListen(): string {
  const env = readText(PATHS.hubEnv) ?? '';
  return /^TENDER_HUB_LISTEN=(.+)$/m.exec(env)?.[1]?.trim() ?? DEFAULT_HUB_LISTEN;
}

function serviceIds(): { uid: number; gid: number } {
  const pw = getent('passwd', SERVICE_USER);
  if (!pw) throw new InstallStepError(`user ${SERVICE_USER} does not exist`);
  return { uid: Number(pw[2]), gid: Number(pw[3]) };
}

/** Carry out one planned step. */
export async function runStep(step: Step, out: StepOutput): Promise<void> {
  switch (step.op) {
    case 'mkdir':
      mkdirSync(step.path, { recursive: true });
      chmodSync(step.path, step.mode);
      return;
    case 'enrol': {
      const password = step.console.password ?? generatePassword();
      const consoleCfg = {
        listen: step.console.listen ?? DEFAULT_CONSOLE_LISTEN,
        passwordHash: hashPassword(password),
        // HTTPS for the console is the crew's choice afterwards (console.tls in agent.json).
        tls: false,
      };
      const where = {
        configPath: PATHS.agentConfig,
        dataDir: PATHS.data,
        console: consoleCfg,
        insecureHttp: step.enrol.insecureHttp,
      };
      const config =
        step.enrol.mode === 'offline'
          ? enrolFromFile({ ...where, file: step.enrol.file })
          : await enrolOnline({ ...where, hub: step.enrol.hub, token: step.enrol.token });
      out.vessel = config.vesselName;
      out.consoleListen = consoleCfg.listen;
      if (!step.console.password) out.consolePassword = password;
      return;
    }
    case 'copy-root':
      writeFileAtomic(PATHS.hubRoot, readFileSync(step.from), 0o644);
      return;
    case 'write-hub-env':
      writeFileAtomic(PATHS.hubEnv, `TENDER_HUB_LISTEN=${step.listen}\n`, 0o644);
      return;
    case 'hub-token': {
      // The hub's server code loads only when a hub is being set up (see hub serve).
      const { openSqliteHubStore } = await import('../hub/store/sqlite/sqlite-hub-store.js');
      const store = openSqliteHubStore(PATHS.hubData);
      try {
        out.adminToken = (await createOpsToken(store, 'admin', 'installer', Date.now())).token;
      } finally {
        await store.close();
      }
      return;
    }
    case 'group-add':
      run('groupadd', ['--system', step.group]);
      return;
    case 'user-add':
      run('useradd', [
        '--system',
        '--gid',
        SERVICE_USER,
        ...(step.groups.length ? ['--groups', step.groups.join(',')] : []),
        '--home-dir',
        '/nonexistent',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        '--comment',
        'Tender services',
        step.user,
      ]);
      return;
    case 'user-join':
      run('usermod', ['--append', '--groups', step.group, step.user]);
      return;
    case 'own': {
      const { uid, gid } = serviceIds();
      if (step.tree) chownTree(step.path, uid, gid);
      else lchownSync(step.path, uid, gid);
      chmodSync(step.path, step.mode);
      return;
    }
    case 'executable':
      installExecutable(step.from, step.to);
      return;
    case 'unit':
      writeFileAtomic(join(PATHS.unitDir, step.unit), step.text, 0o644);
      return;
    case 'daemon-reload':
      run('systemctl', ['daemon-reload']);
      return;
    case 'enable':
      run('systemctl', ['enable', '--quiet', ...step.units]);
      return;
    case 'start':
    case 'restart':
      try {
        run('systemctl', [step.op, step.unit]);
      } catch (err) {
        throw new InstallStepError(`${errorMessage(err)}; ${step.unit} said:\n${journalTail(step.unit)}`);
      }
      return;
    case 'wait-router':
      await waitFor('the router did not answer on its control socket', 'tender-router.service', ROUTER_READY_MS, () =>
        routerRequest(PATHS.routerSocket, { op: 'get' }).then(() => true),
      );
      return;
    case 'wait-active':
      await waitStaysUp(step.unit);
      return;
    case 'wait-hub': {
      const url = `http://${hubListen().replace(/^0\.0\.0\.0:/, '127.0.0.1:')}/ready`;
      await waitFor(`the hub did not answer ${url}`, 'tender-hub.service', HUB_READY_MS, async () => {
        const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        return r.ok;
      });
      return;
    }
    case 'stop-disable':
      try {
        run('systemctl', ['disable', '--now', '--quiet', step.unit]);
      } catch {
        /* not loaded any more: nothing to stop */
      }
      return;
    case 'remove':
      rmSync(step.path, { force: true });
      return;
    case 'user-del':
      run('userdel', [step.user]);
      return;
    case 'group-del':
      // userdel removes a user's own group when nobody else is in it; a group with crew in it stays until now.
      if (getent('group', step.group)) run('groupdel', [step.group]);
      return;
    case 'remove-containers': {
      const docker = createDockerEngine(PATHS.dockerSocket);
      const list = await docker.listContainers({
        [`${LABEL_PREFIX}managed`]: '1',
        [`${LABEL_PREFIX}vessel`]: step.vessel,
      });
      for (const c of list) await docker.removeContainer(c.id);
      return;
    }
    case 'remove-tree':
      rmSync(step.path, { recursive: true, force: true });
      return;
  }
}
