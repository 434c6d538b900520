import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup } from './cleanup.js';
import { eventually } from './proc.js';
import { requireTool } from './tools.js';

/**
 * A Docker engine of its own for one test: a second ship's server on this machine. dockerd with its own
 * socket, data, exec root, default bridge and address pool (no iptables), so the same app@version runs
 * on two vessels under the same container names without either agent seeing the other's containers.
 * Stopped and its folders removed when the test ends. Needs root, as the CI and the main engine do.
 */
export interface Engine {
  socket: string;
  /** Run the docker CLI against this engine. */
  docker(args: string[]): string;
}

export async function startEngine(): Promise<Engine> {
  requireTool('dockerd', 'ip');
  // Under /var/tmp: overlay2 needs a filesystem that takes overlay mounts (a tmpfs /tmp may not).
  const root = mkdtempSync('/var/tmp/tender-engine-');
  const socket = join(root, 'docker.sock');
  // One /24 per network from a /16 no other run of this machine picks at the same moment.
  const net = 200 + (process.pid % 50);
  const pool = `10.${net}.0.0/16`;
  // A default bridge of its own: dockerd with --bridge=none deletes docker0, the main engine's bridge.
  const bridge = `tdr${process.pid % 100000}`;
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
  cleanup(() => spawnSync('ip', ['link', 'del', bridge]));
  execFileSync('ip', ['addr', 'add', `10.${net}.255.1/24`, 'dev', bridge]);
  execFileSync('ip', ['link', 'set', bridge, 'up']);
  const log = join(root, 'dockerd.log');
  const logFd = openSync(log, 'w');
  const child = spawn(
    'dockerd',
    [
      '--host',
      `unix://${socket}`,
      '--data-root',
      join(root, 'data'),
      '--exec-root',
      join(root, 'exec'),
      '--pidfile',
      join(root, 'docker.pid'),
      '--iptables=false',
      `--bridge=${bridge}`,
      '--default-address-pool',
      `base=${pool},size=24`,
      '--log-level=warn',
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  const docker = (args: string[]) =>
    execFileSync('docker', ['--host', `unix://${socket}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  cleanup(async () => {
    try {
      const ids = docker(['ps', '-aq']).trim().split('\n').filter(Boolean);
      if (ids.length) docker(['rm', '-f', ...ids]);
    } catch {
      /* the engine is gone already */
    }
    child.kill('SIGTERM');
    await eventually(async () => child.exitCode !== null || child.signalCode !== null, 30_000, 200).catch(() =>
      child.kill('SIGKILL'),
    );
    rmSync(root, { recursive: true, force: true });
  });
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`dockerd exited ${child.exitCode}`);
        if (!existsSync(socket)) return false;
        docker(['info', '--format', '{{.ServerVersion}}']);
        return true;
      },
      60_000,
      250,
    );
  } catch (err) {
    const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-20).join('\n') : '';
    throw new Error(`a second Docker engine did not start: ${(err as Error).message}\n${tail}`, { cause: err });
  }
  return { socket, docker };
}
