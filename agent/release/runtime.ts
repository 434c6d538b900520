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

/**
 * The container of one service of one release: `tender-APP-SERVICE-VERSION`, injective (two releases
 * never share a container, ATTACKS.md 37). Docker allows `[a-zA-Z0-9_.-]`; `_` is the escape: `_u` for
 * `_`, `_d` for a `-` in the app or service name (so the first two dashes always separate), `_p` for `+`.
 * Names without those characters read as before (`tender-sms-portal-1.0.0`).
 */
export function containerName(app: string, service: string, release: string): string {
  const part = (s: string) => s.replace(/_/g, '_u').replace(/-/g, '_d');
  const version = release.replace(/_/g, '_u').replace(/\+/g, '_p');
  if (/[^a-zA-Z0-9_.-]/.test(version)) throw new Error(`version ${JSON.stringify(release)} cannot name a container`);
  return `tender-${part(app)}-${part(service)}-${version}`;
}

/** The name an agent before injective names gave the container (found and renamed at start). */
export function legacyContainerName(app: string, service: string, release: string): string {
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
