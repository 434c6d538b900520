import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { ContainerCreate, ContainerInfo, DockerEngine } from '../../shared/docker.js';
import type { Route } from '../../agent/router/proxy.js';
import { signEnvelope, envelopeBytes } from '../../shared/trust/envelope.js';
import type { PrivateKey } from '../../shared/trust/keys.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { ServiceSpec } from '../../shared/protocol/release-spec.js';
import { createHash } from 'node:crypto';

/**
 * A Docker engine in memory for controller tests: containers by name with their labels, images by id.
 * It throws on anything it does not implement, so a test cannot pass by a call it did not expect.
 */
export interface FakeEngine {
  docker: DockerEngine;
  containers: Map<string, ContainerInfo & { spec: ContainerCreate }>;
  images: Set<string>;
  /** Every mutating call, in order: "create NAME", "start NAME", "stop NAME", "remove NAME", "rename A B". */
  calls: string[];
}

export function fakeEngine(): FakeEngine {
  const containers: FakeEngine['containers'] = new Map();
  const images = new Set<string>();
  const calls: string[] = [];
  let nextPort = 40_000;
  let nextId = 1;
  const find = (idOrName: string) =>
    containers.get(idOrName) ?? [...containers.values()].find((c) => c.id === idOrName);
  const impl: Partial<DockerEngine> = {
    async inspectContainer(idOrName) {
      const c = find(idOrName);
      if (!c) return undefined;
      const { spec: _spec, ...info } = c;
      return { ...info, labels: { ...info.labels }, ports: { ...info.ports } };
    },
    async listContainers(labels) {
      const out = [];
      for (const c of containers.values())
        if (Object.entries(labels).every(([k, v]) => c.labels[k] === v))
          out.push((await impl.inspectContainer!(c.id))!);
      return out;
    },
    async imageInspect(ref) {
      return images.has(ref) ? { id: ref, diffIds: [], size: 1, repoTags: [] } : undefined;
    },
    async createContainer(spec) {
      if (containers.has(spec.name)) throw new Error(`fake engine: container name ${spec.name} is taken`);
      calls.push(`create ${spec.name}`);
      const id = `c${nextId++}`;
      containers.set(spec.name, {
        id,
        name: spec.name,
        labels: { ...spec.labels },
        running: false,
        status: 'created',
        exitCode: 0,
        restartCount: 0,
        startedAt: '',
        health: 'none',
        ports: {},
        image: spec.image,
        spec,
      });
      return id;
    },
    async startContainer(id) {
      const c = find(id)!;
      calls.push(`start ${c.name}`);
      c.running = true;
      c.status = 'running';
      for (const p of c.spec.ports) c.ports[p.target] = nextPort++;
    },
    async stopContainer(id) {
      const c = find(id);
      calls.push(`stop ${c?.name ?? id}`);
      if (c) {
        c.running = false;
        c.status = 'exited';
      }
    },
    async removeContainer(id) {
      const c = find(id);
      calls.push(`remove ${c?.name ?? id}`);
      if (c) containers.delete(c.name);
    },
    async renameContainer(id, name) {
      const c = find(id)!;
      calls.push(`rename ${c.name} ${name}`);
      containers.delete(c.name);
      c.name = name;
      containers.set(name, c);
    },
    async removeImage(id) {
      calls.push(`rmi ${id.slice(7, 15)}`);
      images.delete(id);
    },
    async ensureVolume() {},
  };
  const docker = new Proxy(impl, {
    get(target, prop) {
      const v = (target as Record<string | symbol, unknown>)[prop];
      if (v === undefined && typeof prop === 'string' && prop !== 'then')
        throw new Error(`fake engine: ${prop} is not implemented`);
      return v;
    },
  }) as DockerEngine;
  return { docker, containers, images, calls };
}

/** A router control socket that keeps the table it is given (no ports are bound). */
export async function fakeRouter(dir: string): Promise<{ socket: string; routes: () => Route[]; close(): void }> {
  const socket = join(dir, 'router.sock');
  let routes: Route[] = [];
  const server: Server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const req = JSON.parse(buf.slice(0, nl)) as { op: string; routes?: Route[] };
      if (req.op === 'set') routes = req.routes!;
      conn.end(`${JSON.stringify({ ok: true, routes, connections: {} })}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(socket, () => r()));
  return { socket, routes: () => routes, close: () => server.close() };
}

export const imageIdOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** A service with no gate and no ports: it is healthy once started. */
export function plainService(image: string, ports: ServiceSpec['ports'] = []): ServiceSpec {
  return {
    imageRef: image,
    imageId: imageIdOf(image),
    ports,
    environment: {},
    volumes: [],
    command: null,
    healthcheck: null,
    restart: 'no',
    dependsOn: [],
    gate: { type: 'none' },
    strategy: 'blue-green',
    drainMs: 0,
  } as ServiceSpec;
}

/** A signed manifest's envelope bytes for APP@VERSION (one service per name given). */
export function signedManifest(
  key: PrivateKey,
  m: {
    app: string;
    version: string;
    sequence: number;
    createdAt?: string;
    services?: string[];
    /** Host paths the first service binds at the same path, declared in its hostAccess. */
    hostAccess?: NonNullable<ServiceSpec['hostAccess']>;
    /** A drain for every service (with a port): a long one gives a test time to cut it short. */
    drainMs?: number;
  },
): { bytes: Buffer; manifest: ReleaseManifest } {
  const services: Record<string, ServiceSpec> = {};
  for (const s of m.services ?? ['portal']) {
    services[s] = plainService(`${m.app}/${s}:${m.version}`);
    if (m.drainMs) services[s] = { ...services[s], ports: [{ published: 8080, target: 8080 }], drainMs: m.drainMs };
  }
  const first = Object.values(services)[0];
  if (first && m.hostAccess?.length) {
    first.hostAccess = m.hostAccess;
    first.volumes = m.hostAccess.map((h) => ({ source: h.path, target: h.path, readOnly: h.readOnly, kind: 'bind' }));
  }
  const manifest = {
    _type: 'release',
    spec: 1,
    app: m.app,
    version: m.version,
    sequence: m.sequence,
    createdAt: m.createdAt ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    services,
    images: {},
  } as ReleaseManifest;
  return { bytes: envelopeBytes(signEnvelope('release', manifest, [key])), manifest };
}
