import type { Logger } from 'pino';
import type { ContainerInfo, DockerEngine } from '../../shared/docker.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { errorMessage } from '../../shared/errors.js';
import { routerRequest } from '../router/control.js';
import type { StateStore } from '../state-store.js';
import { releaseLabel, type BoardReleases } from './board-releases.js';
import type { Journal } from './journal.js';
import { otherColour, type Colour } from './plan.js';
import { containerName, containerSpec, LABELS, volumeName } from './runtime.js';
import { routesFor } from './swap.js';

export interface DriftDeps {
  vessel: string;
  docker: DockerEngine;
  releases: BoardReleases;
  journal: Journal;
  store: StateStore;
  routerSocket: string;
  root: () => TrustedRoot;
  log: Logger;
  /** Something else has the containers in hand (a backup or restore stopping a service): leave them be. */
  busy?: () => boolean;
}

const owned = (i: ContainerInfo, app: string, service: string, version: string) =>
  i.labels[LABELS.app] === app && i.labels[LABELS.service] === service && i.labels[LABELS.release] === version;

/**
 * Keep the live release running (ATTACKS.md-style drift, issue 10 item 10): a live container missing,
 * exited, or replaced by one not its own is started or made again and routed, with a `drift.repaired`
 * event and a counted restart. Never while an update, a watch window (its own rule: roll back), a backup
 * or a restore has the containers; a crew hold only means the held release is the one kept running.
 */
export async function repairDrift(deps: DriftDeps): Promise<number> {
  if (deps.journal.running() || deps.busy?.()) return 0;
  const watching = deps.store.get('watch');
  let repaired = 0;
  for (const r of deps.releases.servingAll()) {
    if (r.state !== 'live' || (watching && (watching.app ?? r.app) === r.app)) continue;
    const m = deps.releases.manifest(r.app, r.version, deps.root());
    let rerouted = false;
    for (const [service, spec] of Object.entries(m.services)) {
      const name = containerName(m.app, service, m.version);
      let info = await deps.docker.inspectContainer(name);
      let problem: string | undefined;
      if (info && !owned(info, m.app, service, m.version)) {
        problem = 'replaced by a container not its own';
        await deps.docker.removeContainer(info.id);
        info = undefined;
      } else if (!info) problem = 'missing';
      else if (!info.running) problem = `exited with code ${info.exitCode}`;
      if (!problem) continue;
      try {
        if (!info) {
          for (const v of spec.volumes)
            if (v.kind === 'volume')
              await deps.docker.ensureVolume(volumeName(m.app, v.source), { [LABELS.app]: m.app });
          const colour: Colour = otherColour(undefined);
          await deps.docker.createContainer(containerSpec(deps.vessel, m.app, service, m.version, colour, spec));
        }
        await deps.docker.startContainer(name);
        rerouted ||= spec.ports.length > 0;
      } catch (err) {
        deps.log.warn({ release: releaseLabel(m), service, problem, reason: errorMessage(err) }, 'drift not repaired');
        continue;
      }
      const key = `${m.app}/${service}`;
      const counts = deps.store.get('drift.restarts') ?? {};
      const restarts = (counts[key] ?? 0) + 1;
      deps.store.set('drift.restarts', { ...counts, [key]: restarts });
      deps.store.event('drift.repaired', { app: m.app, service, release: m.version, problem, restarts });
      deps.log.warn({ release: releaseLabel(m), service, problem, restarts }, 'live service repaired');
      repaired++;
    }
    if (rerouted) {
      // A container started again has new loopback ports: point this app's public ports at them.
      const others = (await routerRequest(deps.routerSocket, { op: 'get' })).routes.filter((x) => x.app !== m.app);
      await routerRequest(deps.routerSocket, { op: 'set', routes: [...others, ...(await routesFor(deps, m))] });
    }
  }
  return repaired;
}
