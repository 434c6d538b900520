import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { TenderError } from '../../shared/errors.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import type { ServiceSpec } from '../../shared/protocol/release-spec.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import type { Db } from '../../shared/sqlite.js';
import { createBoardReleases } from '../release/board-releases.js';
import { containerName, LABELS } from '../release/runtime.js';
import type { BackupDb } from './backup-db.js';
import type { ServiceNames } from './board-policies.js';
import { routerRequest } from '../router/control.js';
import type { Route } from '../router/proxy.js';

export class BackupTargetError extends TenderError {}

/** The live container a policy acts on, and the signed spec it was started from. */
export interface BackupTarget {
  app: string;
  service: string;
  release: string;
  container: string;
  spec: ServiceSpec;
}

/** Everything a backup, verify or restore needs; made in the agent or a crew command, passed down. */
export interface BackupDeps {
  vessel: string;
  db: BackupDb;
  docker: DockerEngine;
  root: () => TrustedRoot;
  /** Where backup files live (DATA/backups by default). */
  dir: string;
  /** Free disk kept beyond any backup: a run that would go below it is refused or stopped. */
  diskMarginBytes: number;
  /** The vessel's corrected clock (ms). */
  now: () => number;
  /** An event for the telemetry outbox (shipped ashore when the link allows). */
  event: (type: string, data: Record<string, unknown>) => void;
  log: Logger;
  locate: (app: string, service: string) => BackupTarget;
  services: ServiceNames;
  /** Free bytes on the filesystem holding `path`; statfs by default, a small number in tests. */
  freeBytes?: (path: string) => number;
  /** Whether the crew marked the link cheap (`tender link cheap`): a policy may ship only then. */
  linkCheap?: () => boolean;
  /** The desired state last received from the hub (its signed policies are installed from it). */
  desired?: () => DesiredState | undefined;
  /** Point the router at a service's container again after it was restarted (its loopback port changed). */
  reroute?: (t: BackupTarget) => Promise<void>;
}

/**
 * A restarted container gets a new loopback port from Docker, so the router's route to it is replaced
 * (the routes of every other service kept as they are).
 */
export function routerRerouter(socket: string, docker: DockerEngine) {
  return async (t: BackupTarget): Promise<void> => {
    if (t.spec.ports.length === 0) return;
    const info = await docker.inspectContainer(t.container);
    if (!info) throw new BackupTargetError(`container ${t.container} is gone`);
    const fresh: Route[] = t.spec.ports.map((p) => {
      const port = info.ports[p.target];
      if (!port) throw new BackupTargetError(`${t.service}@${t.release} has no host port for ${p.target}`);
      return {
        port: p.published,
        target: { host: '127.0.0.1', port },
        app: t.app,
        service: t.service,
        release: t.release,
        colour: info.labels[LABELS.colour] ?? 'blue',
      };
    });
    const { routes } = await routerRequest(socket, { op: 'get' });
    const kept = routes.filter((r) => !(r.app === t.app && r.service === t.service));
    await routerRequest(socket, { op: 'set', routes: [...kept, ...fresh] });
  };
}

/** Labels on the throwaway containers backups start, so a cleanup (or a person) can tell them apart. */
export const HELPER_LABEL = 'io.tender.backup';
// Which process made a helper: one left by a process that died is removed by the next recovery.
export const HELPER_OWNER_LABEL = 'io.tender.backup.owner';
// Which vessel's backups made it (a digest of its backup folder): an engine may be shared with another
// agent (a second vessel in tests, an agent in a container with its own pids), whose helpers are not ours.
export const HELPER_HOME_LABEL = 'io.tender.backup.home';
export const helperHome = (dir: string) => createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 16);
export const HELPER_LABELS = (app: string, owner: string, dir: string) => ({
  [LABELS.app]: app,
  [HELPER_LABEL]: '1',
  [HELPER_OWNER_LABEL]: owner,
  [HELPER_HOME_LABEL]: helperHome(dir),
});

/** Find a policy's target among the releases on board (agent.db), read-only. */
export function boardLocator(agentDb: Db, root: () => TrustedRoot) {
  const releases = createBoardReleases(agentDb);
  const liveOf = (app: string) => releases.list().find((r) => r.app === app && r.state === 'live');
  const services: ServiceNames = (app) => {
    const live = liveOf(app);
    if (!live) return undefined;
    return { release: live.version, services: Object.keys(releases.manifest(app, live.version, root()).services) };
  };
  const locate = (app: string, service: string): BackupTarget => {
    const live = liveOf(app);
    if (!live) throw new BackupTargetError(`app ${app} has no live release on board`);
    const m = releases.manifest(app, live.version, root());
    const spec = m.services[service];
    if (!spec)
      throw new BackupTargetError(
        `service ${app}/${service} is not in the live release ${app}@${live.version} ` +
          `(${Object.keys(m.services).join(', ')})`,
      );
    return { app, service, release: live.version, container: containerName(app, service, live.version), spec };
  };
  return { locate, services };
}
