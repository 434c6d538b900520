import { TenderError } from '../shared/errors.js';
import { UNIT_NAMES, type UnitName } from './unit-files.js';

/**
 * `tender install` as data: what the host looks like (HostFacts, read by host.ts), what was asked
 * (InstallRequest), and the steps that take one to the other (planned here, carried out by host.ts). Pure,
 * so every decision (what to create, what to leave alone, which service to restart) is unit-tested as data.
 */

export class InstallRefused extends TenderError {}

export const SERVICE_USER = 'tender';
export const DOCKER_GROUP = 'docker';

export const PATHS = {
  executable: '/usr/local/bin/tender',
  unitDir: '/etc/systemd/system',
  etc: '/etc/tender',
  data: '/var/lib/tender',
  hubData: '/var/lib/tender-hub',
  agentConfig: '/etc/tender/agent.json',
  hubRoot: '/etc/tender/root.json',
  hubEnv: '/etc/tender/hub.env',
  dockerSocket: '/run/docker.sock',
  routerSocket: '/var/lib/tender/router.sock',
} as const;

// /etc/tender: the agent rewrites its config (offline enrolment completing); crew read it through the group.
// /var/lib/tender: shared by agent, router and crew commands; setgid keeps new files in the group.
// /var/lib/tender-hub: the hub's alone.
export const DIR_MODES = { etc: 0o750, data: 0o2770, hubData: 0o700 } as const;
type DirKey = keyof typeof DIR_MODES;
const DIR_PATHS: Record<DirKey, string> = { etc: PATHS.etc, data: PATHS.data, hubData: PATHS.hubData };

export interface DirFacts {
  uid: number;
  mode: number;
}

export interface HostFacts {
  root: boolean;
  /** systemd is PID 1 (/run/systemd/system exists). */
  systemd: boolean;
  docker: { socket: boolean; group: boolean };
  /** The `tender` user, if it exists. */
  user: { uid: number; groups: string[] } | null;
  group: boolean;
  /** The executable running this, when it is the single executable (not the sources). */
  self: { path: string; digest: string } | null;
  /** sha256 of the executable at PATHS.executable, if any. */
  installed: string | null;
  /** The tender .deb is installed: it owns the executable and the units. */
  packaged: boolean;
  /** Texts of the tender units in PATHS.unitDir. */
  units: Partial<Record<UnitName, string>>;
  active: Partial<Record<UnitName, boolean>>;
  enabled: Partial<Record<UnitName, boolean>>;
  /** From /etc/tender/agent.json. */
  enrolled: { vessel: string } | null;
  dirs: Record<DirKey, DirFacts | null>;
  hubRoot: boolean;
  hubDatabase: boolean;
}

export type Enrolment = (
  { mode: 'offline'; file: string; vessel: string } | { mode: 'online'; hub: string; token: string }
) & { insecureHttp?: boolean };

export interface ConsoleChoice {
  listen?: string;
  password?: string;
}

export type InstallRequest =
  | { kind: 'vessel'; enrol?: Enrolment; console: ConsoleChoice; start: boolean }
  | { kind: 'hub'; root?: string; listen?: string; start: boolean }
  | { kind: 'uninstall'; purge: boolean };

export type Step = { say: string } & (
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'enrol'; enrol: Enrolment; console: ConsoleChoice }
  | { op: 'copy-root'; from: string }
  | { op: 'write-hub-env'; listen: string }
  | { op: 'hub-token' }
  | { op: 'group-add'; group: string }
  | { op: 'user-add'; user: string; groups: string[] }
  | { op: 'user-join'; user: string; group: string }
  /** chown to the service user (the whole tree when `tree`), then chmod the top. */
  | { op: 'own'; path: string; mode: number; tree: boolean }
  | { op: 'executable'; from: string; to: string }
  | { op: 'unit'; unit: UnitName; text: string }
  | { op: 'daemon-reload' }
  | { op: 'enable'; units: UnitName[] }
  | { op: 'start' | 'restart'; unit: UnitName }
  | { op: 'wait-router' }
  | { op: 'wait-active'; unit: UnitName }
  | { op: 'wait-hub' }
  | { op: 'stop-disable'; unit: UnitName }
  | { op: 'remove'; path: string }
  | { op: 'user-del'; user: string }
  | { op: 'group-del'; group: string }
  | { op: 'remove-containers'; vessel: string }
  | { op: 'remove-tree'; path: string }
);

const VESSEL_UNITS: UnitName[] = ['tender-router.service', 'tender-agent.service'];
const HUB_UNITS: UnitName[] = ['tender-hub.service'];
const short = (u: UnitName) => u.replace(/\.service$/, '');

/** Checked first, before any file named on the command line is read. */
export function requireRoot(root: boolean): void {
  if (!root) throw new InstallRefused('tender install must run as root (try: sudo tender install ...)');
}

/** Refusals that leave the host as it was: checked before the first step. */
function preflight(facts: HostFacts, req: InstallRequest): void {
  requireRoot(facts.root);
  if (!facts.systemd) throw new InstallRefused('systemd is not running on this machine; the services need it (PID 1)');
  if (req.kind === 'uninstall') {
    if (facts.packaged)
      throw new InstallRefused('Tender was installed from its package: apt remove tender (apt purge tender: data too)');
    return;
  }
  if (!facts.packaged && !facts.self)
    throw new InstallRefused(
      'tender install copies the single executable: run it from dist/tender (npm run build), not from the sources',
    );
  if (req.kind === 'vessel') {
    if (!facts.docker.socket || !facts.docker.group)
      throw new InstallRefused(
        `Docker not found (${facts.docker.socket ? `no group ${DOCKER_GROUP}` : `no ${PATHS.dockerSocket}`}): ` +
          'install docker.io or docker-ce and start it first',
      );
    if (!facts.enrolled && !req.enrol)
      throw new InstallRefused('this vessel is not enrolled yet: pass --file FILE (offline) or --hub URL --token T');
  }
  if (req.kind === 'hub' && !facts.hubRoot && !req.root)
    throw new InstallRefused('the hub needs its root document the first time: pass --root root.json');
}

/**
 * The steps for REQ on a host that looks like FACTS, with TEXTS the units this executable carries;
 * throws InstallRefused before any change.
 */
export function planInstall(facts: HostFacts, req: InstallRequest, texts: Record<UnitName, string>): Step[] {
  preflight(facts, req);
  if (req.kind === 'uninstall') return planUninstall(facts, req.purge);
  const steps: Step[] = [];
  const made = new Set<DirKey>();
  const dirs: DirKey[] = req.kind === 'vessel' ? ['etc', 'data'] : ['etc', 'hubData'];
  for (const d of dirs) {
    if (facts.dirs[d]) continue;
    made.add(d);
    steps.push({ op: 'mkdir', path: DIR_PATHS[d], mode: DIR_MODES[d], say: `created ${DIR_PATHS[d]}` });
  }

  // Enrolment (and the hub's root and first token) come before anything that is hard to undo: a refused
  // token leaves two empty directories behind, no user and no service.
  if (req.kind === 'vessel' && !facts.enrolled && req.enrol) {
    const e = req.enrol;
    steps.push({
      op: 'enrol',
      enrol: e,
      console: req.console,
      say: e.mode === 'offline' ? `enrolled offline as ${e.vessel} from ${e.file}` : `enrolled online with ${e.hub}`,
    });
  }
  if (req.kind === 'hub') {
    if (req.root) steps.push({ op: 'copy-root', from: req.root, say: `trusted root ${req.root} -> ${PATHS.hubRoot}` });
    if (req.listen) steps.push({ op: 'write-hub-env', listen: req.listen, say: `hub listens on ${req.listen}` });
    if (!facts.hubDatabase) steps.push({ op: 'hub-token', say: 'created the first admin token' });
  }

  steps.push(...planUser(facts, req.kind === 'vessel'));
  for (const d of dirs) {
    const f = facts.dirs[d];
    // A directory made now (written by root just before), or kept from a `tender` user since removed
    // (uninstall keeps data; a new user may get another uid): everything in it changes hands.
    const tree = made.has(d) || !f || !facts.user || f.uid !== facts.user.uid;
    if (tree || f!.mode !== DIR_MODES[d])
      steps.push({
        op: 'own',
        path: DIR_PATHS[d],
        mode: DIR_MODES[d],
        tree,
        say: `${DIR_PATHS[d]} owned by ${SERVICE_USER}, mode ${DIR_MODES[d].toString(8)}`,
      });
  }

  const requested = req.kind === 'vessel' ? VESSEL_UNITS : HUB_UNITS;
  // Every tender unit already here is brought up to date too: they all run the one executable.
  const managed = UNIT_NAMES.filter((u) => requested.includes(u) || facts.units[u] !== undefined);
  const exeChanged = !facts.packaged && facts.installed !== facts.self!.digest;
  const changed = new Set<UnitName>();
  if (!facts.packaged) {
    if (exeChanged)
      steps.push({
        op: 'executable',
        from: facts.self!.path,
        to: PATHS.executable,
        say: `${facts.installed ? 'upgraded' : 'installed'} ${PATHS.executable}`,
      });
    for (const u of managed) {
      const text = texts[u];
      if (facts.units[u] === text) continue;
      changed.add(u);
      steps.push({ op: 'unit', unit: u, text, say: `${facts.units[u] ? 'updated' : 'installed'} ${u}` });
    }
    if (changed.size) steps.push({ op: 'daemon-reload', say: 'systemd reloaded' });
  }
  const toEnable = requested.filter((u) => !facts.enabled[u]);
  if (toEnable.length)
    steps.push({ op: 'enable', units: toEnable, say: `enabled ${toEnable.map(short).join(', ')} (start at boot)` });
  if (!req.start) return steps;
  // A new root or listen address reaches the hub through its command line and environment: a restart.
  if (req.kind === 'hub' && (req.root || req.listen)) changed.add('tender-hub.service');
  for (const u of managed) steps.push(...planRun(facts, u, changed.has(u), exeChanged, requested.includes(u)));
  return steps;
}

/**
 * Start what is not running; restart what runs an old unit or (except the router) an old executable.
 * The router is restarted only when its own unit changed: it holds the apps' ports, and the old
 * executable serves on until then (its file is replaced by a rename, never overwritten).
 */
function planRun(facts: HostFacts, u: UnitName, unitChanged: boolean, exeChanged: boolean, requested: boolean): Step[] {
  const active = facts.active[u] ?? false;
  const steps: Step[] = [];
  if (!active) {
    if (!requested) return steps; // installed here before but stopped: left as the operator left it
    steps.push({ op: 'start', unit: u, say: `started ${short(u)}` });
  } else if (unitChanged || (exeChanged && u !== 'tender-router.service')) {
    steps.push({
      op: 'restart',
      unit: u,
      say: `restarted ${short(u)} (${unitChanged ? 'its settings changed' : 'new executable'})`,
    });
  } else if (u === 'tender-router.service' && exeChanged) {
    steps.push({ op: 'wait-router', say: 'router left running (its unit did not change)' });
    return steps;
  } else return steps;
  if (u === 'tender-router.service') steps.push({ op: 'wait-router', say: 'router is serving its control socket' });
  else if (u === 'tender-hub.service') steps.push({ op: 'wait-hub', say: 'hub answers /ready' });
  else steps.push({ op: 'wait-active', unit: u, say: `${short(u)} is running` });
  return steps;
}

function planUser(facts: HostFacts, wantDocker: boolean): Step[] {
  const steps: Step[] = [];
  const groups = wantDocker && facts.docker.group ? [DOCKER_GROUP] : [];
  if (!facts.group) steps.push({ op: 'group-add', group: SERVICE_USER, say: `created group ${SERVICE_USER}` });
  if (!facts.user) {
    steps.push({
      op: 'user-add',
      user: SERVICE_USER,
      groups,
      say: `created system user ${SERVICE_USER}${groups.length ? ` (in group ${groups.join(', ')})` : ''}`,
    });
  } else {
    for (const g of groups.filter((g) => !facts.user!.groups.includes(g)))
      steps.push({ op: 'user-join', user: SERVICE_USER, group: g, say: `${SERVICE_USER} joined group ${g}` });
  }
  return steps;
}

function planUninstall(facts: HostFacts, purge: boolean): Step[] {
  const steps: Step[] = [];
  const present = UNIT_NAMES.filter((u) => facts.units[u] !== undefined);
  // The agent first: it is the one that talks to the router.
  for (const u of [...present].reverse())
    steps.push({ op: 'stop-disable', unit: u, say: `stopped and disabled ${short(u)}` });
  for (const u of present) steps.push({ op: 'remove', path: `${PATHS.unitDir}/${u}`, say: `removed ${u}` });
  if (present.length) steps.push({ op: 'daemon-reload', say: 'systemd reloaded' });
  if (facts.installed) steps.push({ op: 'remove', path: PATHS.executable, say: `removed ${PATHS.executable}` });
  if (facts.user) steps.push({ op: 'user-del', user: SERVICE_USER, say: `removed user ${SERVICE_USER}` });
  if (facts.group) steps.push({ op: 'group-del', group: SERVICE_USER, say: `removed group ${SERVICE_USER}` });
  if (purge) {
    if (facts.enrolled && facts.docker.socket)
      steps.push({
        op: 'remove-containers',
        vessel: facts.enrolled.vessel,
        say: `removed the containers Tender ran for ${facts.enrolled.vessel} (named volumes kept)`,
      });
    for (const d of ['etc', 'data', 'hubData'] as const)
      if (facts.dirs[d]) steps.push({ op: 'remove-tree', path: DIR_PATHS[d], say: `removed ${DIR_PATHS[d]}` });
  }
  return steps;
}
