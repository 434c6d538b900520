import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import {
  composeFile,
  eventuallyOrReport,
  freePort,
  getBody,
  publishAndRollout,
  startShore,
  type Shore,
} from '../helpers/fleet.js';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { startLoad } from '../helpers/load.js';
import { tender } from '../helpers/proc.js';
import { machineImage, startMachine, type Machine } from '../helpers/systemd-machine.js';
import { tempDir } from '../helpers/tmp.js';
import { RUN_ID } from '../helpers/names.js';

/**
 * Journey 1 on a fresh Debian server: a debootstrap root booted with systemd as PID 1 (a container on the
 * host's network, driving the host's Docker engine), the built single executable and install.sh copied in
 * as from a USB stick, an offline enrolment file, a real hub process on the host. Installs, deploys, lets
 * the crew act as root and as members of the tender group, reboots, upgrades by re-running, uninstalls;
 * then the same through the .deb, and the shore hub through `tender install --hub-server`.
 * The first run builds the Debian image (1-2 minutes, test/helpers/debian-systemd-image.sh).
 */
const repo = join(import.meta.dirname, '..', '..');
const id = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const app = `inst${id}${RUN_ID}`;
const vessel = `inst-${id}`;
const debVessel = `inst-${id}-deb`;
const imageRepo = `tender-test/install-${id}`;

let shore: Shore;
let machine: Machine;
let exe: string;
let exe2: string;
let deb: string;
let deb2: string;
let appPort: number;
let consolePort: number;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const lines = (s: string) => s.trim().split('\n').filter(Boolean);

function inMachine(args: string[], user?: string) {
  return machine.run(args, user ? { user } : {});
}

function statusIn(user?: string) {
  const r = inMachine(['tender', 'status', '--json'], user);
  if (r.code !== 0) throw new Error(`tender status${user ? ` as ${user}` : ''}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function mainPid(unit: string): number {
  return Number(machine.sh(`systemctl show --property=MainPID --value ${unit}`).trim());
}

/** What a failing wait prints: the vessel's own view and both services' last lines. */
async function report(): Promise<string> {
  const st = inMachine(['tender', 'status']);
  const journal = inMachine(['journalctl', '-u', 'tender-agent', '-u', 'tender-router', '-n', '40', '--no-pager']);
  return `status: ${st.stdout}${st.stderr}\njournal:\n${journal.stdout}`;
}

async function waitServing(body: string): Promise<void> {
  let last = '';
  await eventuallyOrReport(
    `"${body}" on port ${appPort}`,
    async () => (last = await getBody(appPort)) === body,
    async () => `router answered: ${last}\n${await report()}`,
    60_000,
    300,
  );
}

beforeAll(async () => {
  useFileScope();
  const image = machineImage();
  const dir = tempDir('tender-install-');
  exe = join(dir, 'tender');
  execFileSync('bash', [join(repo, 'installer', 'build-sea.sh'), exe], { cwd: repo, stdio: 'pipe', timeout: 400_000 });
  // The next version, as far as installing goes: the same program, other bytes (the ELF loader and the
  // SEA blob lookup ignore what follows the file's sections).
  exe2 = join(dir, 'next', 'tender');
  execFileSync('mkdir', ['-p', join(dir, 'next')]);
  copyFileSync(exe, exe2);
  appendFileSync(exe2, '\n# tender install test: next version\n');
  for (const [e, out] of [
    [exe, join(dir, 'deb')],
    [exe2, join(dir, 'deb2')],
  ] as const)
    execFileSync('bash', [join(repo, 'installer', 'build-deb.sh'), e, out], {
      cwd: repo,
      stdio: 'pipe',
      timeout: 180_000,
    });
  deb = join(dir, 'deb', readdirSync(join(dir, 'deb'))[0]!);
  deb2 = join(dir, 'deb2', readdirSync(join(dir, 'deb2'))[0]!);

  buildBusyboxImage({ tag: `${imageRepo}:1`, body: 'install v1\n' });
  buildBusyboxImage({ tag: `${imageRepo}:2`, body: 'install v2\n' });
  shore = await startShore();
  appPort = await freePort();
  consolePort = await freePort();

  machine = startMachine(image, `tender-install-test-${id}`);
  // The host engine's socket keeps the host's group id; give the machine's docker group (made by
  // docker.io's package, as on any server with Docker) that id, as dockerd would have given its socket.
  const gid = execFileSync('stat', ['-c', '%g', '/var/run/docker.sock']).toString().trim();
  machine.sh(`groupmod --non-unique --gid ${gid} docker && mkdir /stick`);
  machine.copyIn(exe, '/stick/tender');
  machine.copyIn(join(repo, 'installer', 'install.sh'), '/stick/install.sh');
}, 20 * 60_000);

afterAll(async () => {
  machine?.remove();
  removeAppContainers(app);
  await runDeferredCleanup();
  for (const v of ['1', '2']) execFileSync('docker', ['rmi', '--force', `${imageRepo}:${v}`], { stdio: 'ignore' });
});

describe('journey 1: install on a fresh Debian server with systemd', () => {
  it('refuses bad input in one line and changes nothing', async () => {
    const add = await tender(['vessel', 'add', vessel, '--offline-file', join(shore.dir, 'v.enrol')], shore.env);
    expect(add.code, add.stderr).toBe(0);
    const file = JSON.parse(readFileSync(join(shore.dir, 'v.enrol'), 'utf8'));
    // A root that is not the one the token pins (one character changed).
    const root = Buffer.from(file.root, 'base64');
    root.writeUInt8(root.readUInt8(root.length - 10) ^ 1, root.length - 10);
    writeFileSync(join(shore.dir, 'bad.enrol'), JSON.stringify({ ...file, root: root.toString('base64') }));
    machine.copyIn(join(shore.dir, 'bad.enrol'), '/stick/bad.enrol');
    machine.copyIn(join(shore.dir, 'v.enrol'), '/stick/vessel.enrol');

    const cases: [string[], string | undefined, RegExp][] = [
      [
        ['/stick/install.sh', '--file', '/stick/bad.enrol'],
        undefined,
        /does not match the one the enrolment token pins/,
      ],
      [['/stick/install.sh', '--file', '/stick/vessel.enrol'], 'nobody', /run it as root/],
      [['/stick/tender', 'install', '--file', '/stick/vessel.enrol'], 'nobody', /must run as root/],
      [['/stick/tender', 'install'], undefined, /not enrolled yet: pass --file/],
      [
        ['/stick/tender', 'install', '--file', '/stick/nope.enrol'],
        undefined,
        /--file \/stick\/nope\.enrol: no such file/,
      ],
      [['/stick/tender', 'install', '--token', 'tne_x', '--hub', 'http://h'], undefined, /--token is malformed/],
      [['/stick/tender', 'install', '--purge'], undefined, /--purge goes with --uninstall/],
    ];
    for (const [args, user, why] of cases) {
      const r = inMachine(args, user);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(lines(r.stderr), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(why);
    }
    machine.sh('! id tender && ! getent group tender && ! test -e /etc/tender && ! test -e /var/lib/tender');
    machine.sh('! test -e /usr/local/bin/tender && ! ls /etc/systemd/system/tender-* 2>/dev/null');
  });

  it('installs from install.sh with an offline enrolment file: router then agent, enrolled and deployed', async () => {
    // Ashore first: the release this vessel should run, waiting for its first contact.
    await publishAndRollout(
      shore,
      composeFile(shore.dir, 'v1', `${imageRepo}:1`, appPort, app),
      '1',
      `vessel:${vessel}`,
    );
    // No link at install time is the point of the file: the machine could be offline here; the hub is
    // reached only by the agent, after it starts.
    const r = inMachine([
      '/stick/install.sh',
      '--file',
      '/stick/vessel.enrol',
      // The shore here serves plain HTTP: the file pins no certificate.
      '--insecure-http',
      '--console-listen',
      `127.0.0.1:${consolePort}`,
      '--console-password',
      'crew-pass-1',
    ]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const out = r.stdout;
    expect(out).toContain(`Tender installed for vessel ${vessel}`);
    expect(out).toContain('created system user tender (in group docker)');
    expect(out.indexOf('started tender-router')).toBeGreaterThan(0);
    expect(out.indexOf('started tender-agent')).toBeGreaterThan(out.indexOf('started tender-router'));
    expect(out).toContain('check it: tender status');

    expect(machine.sh('id -nG tender').trim().split(' ').sort()).toEqual(['docker', 'tender']);
    const made = ['/etc/tender', '/etc/tender/agent.json', '/var/lib/tender', '/var/lib/tender/vessel.key'];
    expect(machine.sh(`stat -c "%n %U:%G %a" ${made.join(' ')} /usr/local/bin/tender`)).toBe(
      [
        '/etc/tender tender:tender 750',
        '/etc/tender/agent.json tender:tender 640',
        '/var/lib/tender tender:tender 2770',
        '/var/lib/tender/vessel.key tender:tender 600',
        '/usr/local/bin/tender root:root 755',
        '',
      ].join('\n'),
    );
    expect(machine.sh('systemctl is-enabled tender-router tender-agent')).toBe('enabled\nenabled\n');
    expect(sha256(exe)).toBe(machine.sh('sha256sum /usr/local/bin/tender').split(' ')[0]);

    // The services as the kernel sees them: the tender user, no new privileges, and no capability but
    // the router's CAP_NET_BIND_SERVICE (bit 10).
    for (const [unit, capEff] of [
      ['tender-agent', '0000000000000000'],
      ['tender-router', '0000000000000400'],
    ] as const) {
      const st = machine.sh(`cat /proc/${mainPid(unit)}/status`);
      expect(/^Uid:\s+(\d+)/m.exec(st)?.[1], unit).toBe(machine.sh('id -u tender').trim());
      expect(/^CapEff:\s+(\w+)/m.exec(st)?.[1], unit).toBe(capEff);
      expect(/^NoNewPrivs:\s+(\d)/m.exec(st)?.[1], unit).toBe('1');
      const live = machine.sh(`systemd-analyze security ${unit}.service | tail -1`);
      expect(Number(/: (\d+\.\d)/.exec(live)?.[1]), live).toBeLessThanOrEqual(4.0);
    }

    // First contact completes the enrolment and brings the release; the router serves it.
    await waitServing('install v1');
    const st = statusIn();
    expect(st).toMatchObject({ vessel, enrolment: 'complete', release: { current: '1' } });
    expect(st.services).toEqual([{ name: 'portal', state: 'running' }]);
  }, 180_000);

  it('crew commands work as root and as members of the tender group, and leave the state with tender', async () => {
    await publishAndRollout(
      shore,
      composeFile(shore.dir, 'v2', `${imageRepo}:2`, appPort, app),
      '2',
      `vessel:${vessel}`,
    );
    // The agent syncs as it starts (its next poll is a minute away).
    machine.sh('systemctl restart tender-agent');
    await waitServing('install v2');
    // Serving v2 comes with the flip; the update ends a moment later (commit, prune). A crew command
    // meanwhile is told to wait, rightly.
    await eventuallyOrReport(
      'the update to 2 to end',
      async () => {
        const st = statusIn();
        return st.release.current === '2' && st.lastUpdate?.state === 'done';
      },
      report,
      30_000,
    );

    // Root: acts as the owner of the state (the tender user, in group docker).
    const rb = inMachine(['tender', 'rollback']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toMatch(/rolled back from 2 to 1/);
    expect(await getBody(appPort)).toBe('install v1');

    // A crew member in group tender reads status, releases and logs without sudo.
    machine.sh('useradd --create-home --groups tender alice');
    expect(statusIn('alice')).toMatchObject({ release: { current: '1', previous: '2', held: true } });
    const releases = inMachine(['tender', 'releases'], 'alice');
    expect(releases.code, releases.stderr).toBe(0);
    expect(releases.stdout).toMatch(/\* 1 /);
    // Switching releases drives Docker: with group docker too, the crew member rolls forward to 2 and back.
    machine.sh('usermod --append --groups docker alice');
    const fwd = inMachine(['tender', 'rollback', '2'], 'alice');
    expect(fwd.code, fwd.stderr).toBe(0);
    expect(await getBody(appPort)).toBe('install v2');
    const back = inMachine(['tender', 'rollback', '1'], 'alice');
    expect(back.code, back.stderr).toBe(0);
    expect(await getBody(appPort)).toBe('install v1');

    // Whoever ran them, everything in the state is still the agent's and the group's.
    expect(machine.sh('find /etc/tender /var/lib/tender ! -user tender -o ! -group tender')).toBe('');
  }, 180_000);

  it('comes back after a reboot: both units start at boot and the router serves the held release', async () => {
    machine.reboot();
    expect(machine.sh('systemctl is-active tender-router tender-agent')).toBe('active\nactive\n');
    await waitServing('install v1');
    expect(statusIn()).toMatchObject({ release: { current: '1', held: true } });
  }, 180_000);

  it('upgrades in place when run again: new executable, agent restarted, router serving throughout', async () => {
    const before = { router: mainPid('tender-router'), agent: mainPid('tender-agent') };
    const kept = machine.sh('sha256sum /etc/tender/agent.json /var/lib/tender/vessel.key /var/lib/tender/root.json');
    machine.copyIn(exe2, '/stick/tender');
    const load = startLoad(appPort, 20);
    const r = await machine.runAsync(['/stick/tender', 'install']);
    await new Promise((res) => setTimeout(res, 1000));
    const stats = await load.stop();
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(r.stdout).toContain('upgraded /usr/local/bin/tender');
    expect(r.stdout).toContain('restarted tender-agent (new executable)');
    expect(r.stdout).toContain('router left running');
    expect(r.stdout).not.toMatch(/restarted tender-router|enrolled|created/);
    expect(mainPid('tender-router')).toBe(before.router);
    expect(mainPid('tender-agent')).not.toBe(before.agent);
    expect(machine.sh('sha256sum /usr/local/bin/tender').split(' ')[0]).toBe(sha256(exe2));
    expect(machine.sh('sha256sum /etc/tender/agent.json /var/lib/tender/vessel.key /var/lib/tender/root.json')).toBe(
      kept,
    );
    expect(stats.failed, stats.errors.slice(0, 5).join('; ')).toBe(0);
    expect(stats.ok).toBeGreaterThan(0);
    expect(statusIn()).toMatchObject({ release: { current: '1', held: true }, link: { state: 'up' } });

    // Once more: nothing left to do, nothing restarted.
    const again = inMachine(['tender', 'install']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/nothing needed changing/);
    expect(mainPid('tender-router')).toBe(before.router);
  }, 180_000);

  it('--uninstall leaves no unit, user or executable behind and keeps the data; --purge removes it', async () => {
    const r = inMachine(['tender', 'install', '--uninstall']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept /etc/tender and /var/lib/tender');
    machine.sh('! ls /etc/systemd/system/tender-* 2>/dev/null && ! id tender && ! getent group tender');
    machine.sh(
      '! test -e /usr/local/bin/tender && test -f /etc/tender/agent.json && test -f /var/lib/tender/vessel.key',
    );
    expect(machine.sh('systemctl list-units --all --plain --no-legend "tender*"')).toBe('');
    expect(await getBody(appPort)).toMatch(/^error:/);

    const purge = inMachine(['/stick/tender', 'install', '--uninstall', '--purge']);
    expect(purge.code, purge.stderr).toBe(0);
    machine.sh('! test -e /etc/tender && ! test -e /var/lib/tender');
    const left = execFileSync('docker', ['ps', '-aq', '--filter', `label=io.tender.vessel=${vessel}`]).toString();
    expect(left.trim()).toBe('');
  }, 120_000);

  it('the .deb: apt install, enroll, start; an upgrade keeps the router; apt purge removes it all', async () => {
    const add = await tender(['vessel', 'add', debVessel, '--offline-file', join(shore.dir, 'deb.enrol')], shore.env);
    expect(add.code, add.stderr).toBe(0);
    machine.copyIn(join(shore.dir, 'deb.enrol'), '/stick/deb.enrol');
    machine.copyIn(deb, '/stick/tender.deb');
    machine.copyIn(deb2, '/stick/tender-next.deb');

    const apt = machine.run(['apt-get', 'install', '--yes', '/stick/tender.deb'], { timeoutMs: 120_000 });
    expect(apt.code, apt.stderr).toBe(0);
    expect(apt.stdout).toContain('Enrol this vessel');
    expect(machine.sh('systemctl is-enabled tender-router tender-agent')).toBe('enabled\nenabled\n');
    // Not enrolled yet: the units wait for the config instead of failing in a loop.
    expect(inMachine(['systemctl', 'is-active', 'tender-agent']).stdout.trim()).toBe('inactive');

    const enrol = inMachine([
      'tender',
      'agent',
      'enroll',
      '--file',
      '/stick/deb.enrol',
      '--insecure-http',
      '--console-listen',
      '127.0.0.1:0',
    ]);
    expect(enrol.code, enrol.stderr).toBe(0);
    expect(machine.sh('stat -c "%U:%G" /etc/tender/agent.json /var/lib/tender/vessel.key')).toBe(
      'tender:tender\ntender:tender\n',
    );
    machine.sh('systemctl start tender-router tender-agent');
    await eventuallyOrReport(
      'the packaged agent to complete its enrolment',
      async () => statusIn().enrolment === 'complete',
      report,
      30_000,
    );

    const router = mainPid('tender-router');
    const agent = mainPid('tender-agent');
    const up = machine.run(['dpkg', '--install', '/stick/tender-next.deb'], { timeoutMs: 120_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(mainPid('tender-router')).toBe(router);
    expect(mainPid('tender-agent')).not.toBe(agent);
    expect(machine.sh('systemctl is-active tender-agent')).toBe('active\n');
    expect(machine.sh('sha256sum /usr/bin/tender').split(' ')[0]).toBe(sha256(exe2));

    const purge = machine.run(['apt-get', 'purge', '--yes', 'tender'], { timeoutMs: 120_000 });
    expect(purge.code, purge.stderr).toBe(0);
    machine.sh('! ls /usr/lib/systemd/system/tender-* 2>/dev/null && ! test -e /usr/bin/tender && ! id tender');
    machine.sh('! test -e /etc/tender && ! test -e /var/lib/tender');
    expect(machine.sh('systemctl list-units --all --plain --no-legend "tender*"')).toBe('');
  }, 240_000);

  it('--hub-server installs the shore hub: it answers /ready and the admin token it prints works', async () => {
    const hubPort = await freePort();
    machine.copyIn(join(shore.dir, 'keys', 'root.json'), '/stick/root.json');
    machine.copyIn(exe, '/stick/tender');
    const r = inMachine([
      '/stick/install.sh',
      '--hub-server',
      '--root',
      '/stick/root.json',
      '--listen',
      `127.0.0.1:${hubPort}`,
      '--json',
    ]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const res = JSON.parse(r.stdout) as { adminToken: string; changes: string[] };
    expect(res.changes).toContain('started tender-hub');
    expect((await fetch(`http://127.0.0.1:${hubPort}/ready`)).status).toBe(200);
    const list = await tender(['vessel', 'list', '--hub', `http://127.0.0.1:${hubPort}`, '--token', res.adminToken]);
    expect(list.code, list.stderr).toBe(0);
    const st = machine.sh(`cat /proc/${mainPid('tender-hub')}/status`);
    expect(/^CapEff:\s+(\w+)/m.exec(st)?.[1]).toBe('0000000000000000');
    // Ashore there is no Docker to join.
    expect(machine.sh('id -nG tender').trim()).toBe('tender');

    const gone = inMachine(['tender', 'install', '--uninstall', '--purge']);
    expect(gone.code, gone.stderr).toBe(0);
    machine.sh('! ls /etc/systemd/system/tender-* 2>/dev/null && ! test -e /var/lib/tender-hub && ! id tender');
  }, 120_000);
});
