import { LABEL_PREFIX, type ContainerCreate, type ContainerInfo, type DockerEngine } from '../../shared/docker.js';
import type { ServiceSpec } from '../../shared/protocol/release-spec.js';
import type { Colour } from './plan.js';

/** How Tender names and labels what it runs, so the engine itself tells which container is which. */
export const LABELS = {
  managed: `${LABEL_PREFIX}managed`,
  app: `${LABEL_PREFIX}app`,
  service: `${LABEL_PREFIX}service`,
  release: `${LABEL_PREFIX}release`,
  colour: `${LABEL_PREFIX}colour`,
  vessel: `${LABEL_PREFIX}vessel`,
} as const;

export function containerName(app: string, service: string, release: string): string {
  return `tender-${app}-${service}-${release}`.replace(/[^a-zA-Z0-9_.-]/g, '_');
}

export function volumeName(app: string, volume: string): string {
  return `tender_${app}_${volume}`;
}

export function containerSpec(
  vessel: string,
  app: string,
  service: string,
  release: string,
  colour: Colour,
  spec: ServiceSpec,
): ContainerCreate {
  return {
    name: containerName(app, service, release),
    image: spec.imageId,
    labels: {
      [LABELS.managed]: '1',
      [LABELS.vessel]: vessel,
      [LABELS.app]: app,
      [LABELS.service]: service,
      [LABELS.release]: release,
      [LABELS.colour]: colour,
    },
    env: spec.environment,
    command: spec.command,
    // Each colour listens on a free loopback port; the router holds the public one.
    ports: spec.ports.map((p) => ({ target: p.target, hostPort: 0 })),
    mounts: spec.volumes.map((v) => ({ ...v, source: v.kind === 'volume' ? volumeName(app, v.source) : v.source })),
    restart: spec.restart,
    healthcheck: spec.healthcheck,
  };
}

export async function findContainer(
  docker: DockerEngine,
  app: string,
  service: string,
  release: string,
): Promise<ContainerInfo | undefined> {
  return docker.inspectContainer(containerName(app, service, release));
}
