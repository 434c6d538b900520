import { describe, expect, it } from 'vitest';
import {
  InstallRefused,
  planInstall,
  type HostFacts,
  type InstallRequest,
  type Step,
} from '../../installer/install-plan.js';
import { UNIT_NAMES, type UnitName } from '../../installer/unit-files.js';

const TEXTS = Object.fromEntries(UNIT_NAMES.map((u) => [u, `[Unit]\n# ${u} v2\n`])) as Record<UnitName, string>;
const OLD = Object.fromEntries(UNIT_NAMES.map((u) => [u, `[Unit]\n# ${u} v1\n`])) as Record<UnitName, string>;
const ROUTER = 'tender-router.service';
const AGENT = 'tender-agent.service';
const HUB = 'tender-hub.service';

/** A fresh Debian server with Docker and systemd, the single executable run as root. */
function fresh(over: Partial<HostFacts> = {}): HostFacts {
  return {
    root: true,
    systemd: true,
    docker: { socket: true, group: true },
    user: null,
    group: false,
    self: { path: '/media/stick/tender', digest: 'new' },
    installed: null,
    packaged: false,
    units: {},
    active: {},
    enabled: {},
    enrolled: null,
    dirs: { etc: null, data: null, hubData: null },
    hubRoot: false,
    hubDatabase: false,
    ...over,
  };
}

/** The same server after a vessel install of the executable with digest EXE and units TEXTS. */
function installed(exe = 'new', units: Record<UnitName, string> = TEXTS, over: Partial<HostFacts> = {}): HostFacts {
  return fresh({
    user: { uid: 998, groups: ['tender', 'docker'] },
    group: true,
    installed: exe,
    units: { [ROUTER]: units[ROUTER], [AGENT]: units[AGENT] },
    active: { [ROUTER]: true, [AGENT]: true },
    enabled: { [ROUTER]: true, [AGENT]: true },
    enrolled: { vessel: 'sea-1' },
    dirs: { etc: { uid: 998, mode: 0o750 }, data: { uid: 998, mode: 0o2770 }, hubData: null },
    ...over,
  });
}

const offline: InstallRequest = {
  kind: 'vessel',
  enrol: { mode: 'offline', file: '/media/stick/sea-1.enrol', vessel: 'sea-1' },
  console: {},
  start: true,
};
const rerun: InstallRequest = { kind: 'vessel', console: {}, start: true };
const ops = (steps: Step[]) =>
  steps.map((s) => (s.op === 'unit' ? `unit ${s.unit}` : 'unit' in s ? `${s.op} ${s.unit}` : s.op));

function refusal(facts: HostFacts, req: InstallRequest): string {
  try {
    planInstall(facts, req, TEXTS);
  } catch (err) {
    expect(err).toBeInstanceOf(InstallRefused);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('install plan', () => {
  it('on a fresh server: directories, enrolment, user, ownership, executable, units, then router before agent', () => {
    const steps = planInstall(fresh(), offline, TEXTS);
    expect(ops(steps)).toEqual([
      'mkdir',
      'mkdir',
      'enrol',
      'group-add',
      'user-add',
      'own',
      'own',
      'executable',
      `unit ${ROUTER}`,
      `unit ${AGENT}`,
      'daemon-reload',
      'enable',
      `start ${ROUTER}`,
      'wait-router',
      `start ${AGENT}`,
      `wait-active ${AGENT}`,
    ]);
    expect(steps.find((s) => s.op === 'user-add')).toMatchObject({ user: 'tender', groups: ['docker'] });
    expect(steps.filter((s) => s.op === 'own').map((s) => s.op === 'own' && [s.path, s.mode, s.tree])).toEqual([
      ['/etc/tender', 0o750, true],
      ['/var/lib/tender', 0o2770, true],
    ]);
  });

  it(
    'refuses with one reason before any step: not root, no systemd, no Docker, from ' + 'the sources, nothing to enrol',
    () => {
      expect(refusal(fresh({ root: false }), offline)).toMatch(/must run as root/);
      expect(refusal(fresh({ systemd: false }), offline)).toMatch(/systemd is not running/);
      expect(refusal(fresh({ docker: { socket: false, group: true } }), offline)).toMatch(
        /Docker not found \(no \/run\/docker\.sock\)/,
      );
      expect(refusal(fresh({ docker: { socket: true, group: false } }), offline)).toMatch(/no group docker/);
      expect(refusal(fresh({ self: null }), offline)).toMatch(/single executable/);
      expect(refusal(fresh(), rerun)).toMatch(/not enrolled yet: pass --file/);
    },
  );

  it('re-run with nothing new changes nothing and restarts nothing', () => {
    expect(planInstall(installed(), rerun, TEXTS)).toEqual([]);
    // The enrolment file given again (the same command from the stick) is not used twice.
    expect(planInstall(installed(), offline, TEXTS)).toEqual([]);
  });

  it('upgrade to a new executable restarts the agent and leaves the router running', () => {
    const steps = planInstall(installed('old'), rerun, TEXTS);
    expect(ops(steps)).toEqual(['executable', 'wait-router', `restart ${AGENT}`, `wait-active ${AGENT}`]);
    expect(steps.some((s) => s.op === 'restart' && s.unit === ROUTER)).toBe(false);
  });

  it('restarts the router only when its own unit changed', () => {
    const units = { ...TEXTS, [ROUTER]: OLD[ROUTER] };
    const steps = planInstall(installed('new', units), rerun, TEXTS);
    expect(ops(steps)).toEqual([`unit ${ROUTER}`, 'daemon-reload', `restart ${ROUTER}`, 'wait-router']);
  });

  it('starts what is stopped, and brings the hub unit on the same host up to date with the executable', () => {
    const facts = installed('old', TEXTS, {
      active: { [ROUTER]: false, [AGENT]: true, [HUB]: true },
      units: { [ROUTER]: TEXTS[ROUTER], [AGENT]: TEXTS[AGENT], [HUB]: OLD[HUB] },
    });
    expect(ops(planInstall(facts, rerun, TEXTS))).toEqual([
      'executable',
      `unit ${HUB}`,
      'daemon-reload',
      `start ${ROUTER}`,
      'wait-router',
      `restart ${AGENT}`,
      `wait-active ${AGENT}`,
      `restart ${HUB}`,
      'wait-hub',
    ]);
  });

  it('hands data kept from a removed tender user to the new one, and fixes a directory mode', () => {
    const facts = installed('new', TEXTS, {
      user: { uid: 997, groups: ['tender', 'docker'] },
      dirs: { etc: { uid: 998, mode: 0o750 }, data: { uid: 997, mode: 0o755 }, hubData: null },
    });
    const own = planInstall(facts, rerun, TEXTS).filter((s) => s.op === 'own');
    expect(own.map((s) => s.op === 'own' && [s.path, s.tree])).toEqual([
      ['/etc/tender', true],
      ['/var/lib/tender', false],
    ]);
  });

  it('puts the tender user back in the docker group if it left', () => {
    const steps = planInstall(installed('new', TEXTS, { user: { uid: 998, groups: ['tender'] } }), rerun, TEXTS);
    expect(steps).toEqual([expect.objectContaining({ op: 'user-join', user: 'tender', group: 'docker' })]);
  });

  it('with --no-start enables but starts nothing', () => {
    expect(ops(planInstall(fresh(), { ...offline, start: false }, TEXTS)).slice(-2)).toEqual([
      'daemon-reload',
      'enable',
    ]);
  });

  it('leaves the executable and the units to the .deb that owns them', () => {
    const steps = planInstall(fresh({ packaged: true, self: null }), offline, TEXTS);
    expect(steps.some((s) => s.op === 'executable' || s.op === 'unit')).toBe(false);
    expect(ops(steps).slice(-4)).toEqual([`start ${ROUTER}`, 'wait-router', `start ${AGENT}`, `wait-active ${AGENT}`]);
    expect(refusal(fresh({ packaged: true }), { kind: 'uninstall', purge: false })).toMatch(/apt remove tender/);
  });

  it('uninstall stops the agent before the router, removes units, executable, user and group, keeps data', () => {
    const steps = planInstall(installed(), { kind: 'uninstall', purge: false }, TEXTS);
    expect(ops(steps)).toEqual([
      `stop-disable ${AGENT}`,
      `stop-disable ${ROUTER}`,
      'remove',
      'remove',
      'daemon-reload',
      'remove',
      'user-del',
      'group-del',
    ]);
    expect(steps.filter((s) => s.op === 'remove').map((s) => s.op === 'remove' && s.path)).toEqual([
      '/etc/systemd/system/tender-router.service',
      '/etc/systemd/system/tender-agent.service',
      '/usr/local/bin/tender',
    ]);
  });

  it('uninstall --purge also removes the vessel’s containers and the state; on a clean host it does nothing', () => {
    const steps = planInstall(installed(), { kind: 'uninstall', purge: true }, TEXTS);
    expect(steps.filter((s) => s.op === 'remove-containers' || s.op === 'remove-tree')).toEqual([
      expect.objectContaining({ op: 'remove-containers', vessel: 'sea-1' }),
      expect.objectContaining({ op: 'remove-tree', path: '/etc/tender' }),
      expect.objectContaining({ op: 'remove-tree', path: '/var/lib/tender' }),
    ]);
    expect(planInstall(fresh(), { kind: 'uninstall', purge: true }, TEXTS)).toEqual([]);
  });

  it('the hub server: its root and first admin token, a user with no docker group, restart on a new root', () => {
    const hub: InstallRequest = { kind: 'hub', root: '/tmp/root.json', start: true };
    expect(refusal(fresh(), { ...hub, root: undefined })).toMatch(/--root root\.json/);
    // No Docker needed ashore.
    const steps = planInstall(fresh({ docker: { socket: false, group: false } }), hub, TEXTS);
    expect(ops(steps)).toEqual([
      'mkdir',
      'mkdir',
      'copy-root',
      'hub-token',
      'group-add',
      'user-add',
      'own',
      'own',
      'executable',
      `unit ${HUB}`,
      'daemon-reload',
      'enable',
      `start ${HUB}`,
      'wait-hub',
    ]);
    expect(steps.find((s) => s.op === 'user-add')).toMatchObject({ groups: [] });
    const running = fresh({
      user: { uid: 998, groups: ['tender'] },
      group: true,
      installed: 'new',
      units: { [HUB]: TEXTS[HUB] },
      active: { [HUB]: true },
      enabled: { [HUB]: true },
      dirs: { etc: { uid: 998, mode: 0o750 }, data: null, hubData: { uid: 998, mode: 0o700 } },
      hubRoot: true,
      hubDatabase: true,
    });
    expect(ops(planInstall(running, { kind: 'hub', start: true }, TEXTS))).toEqual([]);
    expect(ops(planInstall(running, hub, TEXTS))).toEqual(['copy-root', `restart ${HUB}`, 'wait-hub']);
  });
});
