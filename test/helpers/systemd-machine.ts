import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A fresh Debian server for the install tests: the debootstrap image of debian-systemd-image.sh run as a
 * container with systemd as PID 1, sharing the host's network (the apps the agent starts publish their
 * ports on the host's 127.0.0.1, where the router in here must reach them, and the test's hub listens
 * there too) and the host engine's socket (the agent drives a real Docker engine; the image's own engine
 * is masked).
 */
export interface Machine {
  name: string;
  /** Run a command in the machine as root (or `user`); never throws. */
  run(args: string[], opts?: { user?: string; input?: string; timeoutMs?: number }): RunResult;
  /** As run, without blocking this process (load generators and servers in it keep running). */
  runAsync(args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Run a shell script in the machine as root and return its stdout; throws with stderr if it fails. */
  sh(script: string): string;
  copyIn(hostPath: string, machinePath: string): void;
  /** Restart the container (a reboot: a fresh /run, systemd boots again) and wait until it is up. */
  reboot(): void;
  remove(): void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Booting a minimal Debian to multi-user takes a second or two here; a loaded CI runner gets room.
const BOOT_TIMEOUT_S = 90;

export function machineImage(): string {
  const script = join(import.meta.dirname, 'debian-systemd-image.sh');
  // Built once per machine (1-2 minutes from a near Debian mirror), then reused from its tag; debootstrap's
  // chatter is shown only if the build fails.
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.status !== 0)
    throw new Error(
      `${script} failed (${r.status ?? r.error}):\n${(r.stderr ?? '').split('\n').slice(-30).join('\n')}`,
    );
  return r.stdout.trim().split('\n').pop()!;
}

// statfs type of a cgroup v2 (unified) hierarchy.
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * What systemd as PID 1 needs of the engine: to mount, to make namespaces for the units' sandboxes, and a
 * cgroup tree of its own it can write.
 */
function cgroupFlags(): string[] {
  if (statfsSync('/sys/fs/cgroup').type === CGROUP2_SUPER_MAGIC)
    // cgroup v2 (GitHub's runners): a private cgroup namespace makes the container's own cgroup the root
    // systemd sees, and --privileged mounts it writable.
    return ['--privileged', '--cgroupns=private'];
  return [
    // cgroup v1 (this machine): not --privileged, which asks for every capability, and this engine's
    // bounding set lacks CAP_SYS_RESOURCE ("unable to apply caps"); everything but that one does the same.
    '--cap-add',
    'ALL',
    '--cap-drop',
    'SYS_RESOURCE',
    '--security-opt',
    'seccomp=unconfined',
    '--security-opt',
    'apparmor=unconfined',
    // systemd keeps to the container's own cgroup (/docker/<id>) inside the host's tree.
    '--cgroupns=host',
    '--volume',
    '/sys/fs/cgroup:/sys/fs/cgroup:rw',
  ];
}

export function startMachine(image: string, name: string): Machine {
  execFileSync(
    'docker',
    [
      'run',
      '--detach',
      '--name',
      name,
      '--label',
      'io.tender.test=install',
      ...cgroupFlags(),
      '--tmpfs',
      '/run',
      '--tmpfs',
      '/run/lock',
      '--network',
      'host',
      '--volume',
      '/var/run/docker.sock:/run/docker.sock',
      // What systemd takes as "shut down cleanly" (docker's default SIGTERM would only re-exec it).
      '--stop-signal',
      'SIGRTMIN+3',
      image,
    ],
    { stdio: 'pipe' },
  );
  const run: Machine['run'] = (args, opts = {}) => {
    const r = spawnSync('docker', ['exec', '-i', ...(opts.user ? ['--user', opts.user] : []), name, ...args], {
      encoding: 'utf8',
      input: opts.input ?? '',
      timeout: opts.timeoutMs ?? 120_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
  };
  // Until systemd has opened its bus, systemctl cannot even ask; then --wait waits out the boot.
  const waitBooted = () => {
    const end = Date.now() + BOOT_TIMEOUT_S * 1000;
    let state = '';
    while (Date.now() < end) {
      const r = run(['systemctl', 'is-system-running', '--wait'], { timeoutMs: BOOT_TIMEOUT_S * 1000 });
      state = (r.stdout.trim() || r.stderr.trim()).split('\n')[0]!;
      if (state === 'running') return;
      if (state === 'degraded') break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
    const failed = run(['systemctl', '--failed', '--no-pager']).stdout;
    throw new Error(`${name} did not boot cleanly within ${BOOT_TIMEOUT_S}s (${state}):\n${failed}`);
  };
  const runAsync: Machine['runAsync'] = (args, opts = {}) =>
    new Promise((resolve) => {
      const p = spawn('docker', ['exec', name, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      p.on('close', (code) => {
        clearTimeout(t);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  const m: Machine = {
    name,
    run,
    runAsync,
    sh(script) {
      const r = run(['sh', '-ec', script]);
      if (r.code !== 0) throw new Error(`in ${name}: ${script}\n=> exit ${r.code}: ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    copyIn(hostPath, machinePath) {
      execFileSync('docker', ['cp', hostPath, `${name}:${machinePath}`], { stdio: 'pipe' });
    },
    reboot() {
      execFileSync('docker', ['restart', '--time', '30', name], { stdio: 'pipe' });
      waitBooted();
    },
    remove() {
      spawnSync('docker', ['rm', '--force', '--volumes', name], { stdio: 'ignore' });
    },
  };
  try {
    waitBooted();
  } catch (err) {
    m.remove();
    throw err;
  }
  return m;
}
