import { createHash, randomBytes } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cleanup } from './cleanup.js';

/**
 * A stub container runtime for journey tests at fleet scale: the part of the Docker Engine API the agent
 * uses (through dockerode, unchanged), served on a unix socket the agent is pointed at with DOCKER_SOCKET.
 * Images are really loaded (the docker-save tar the agent assembles from verified chunks is parsed, and
 * the image ID is the digest of its config, as Docker computes it); a started container with published
 * ports answers HTTP on a loopback port (200, naming its image and container), so health gates, the
 * router and a person with curl see it serve. Nothing runs: no process, no file system, no network.
 * One per vessel (container names are per engine). Not for tests of Docker behaviour: those use the real
 * engine.
 */
export interface StubEngine {
  socket: string;
  /** Images loaded (ID -> repo tags). */
  images: Map<string, string[]>;
  /** Containers by name: image ID and whether it runs. */
  containers(): { name: string; image: string; running: boolean; labels: Record<string, string> }[];
  close(): Promise<void>;
}

interface StubImage {
  id: string;
  repoTags: string[];
  diffIds: string[];
  size: number;
}

interface StubContainer {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  env: string[];
  exposed: number[];
  healthcheck: boolean;
  status: 'created' | 'running' | 'paused' | 'exited';
  exitCode: number;
  startedAt: string;
  ports: Record<number, number>;
  servers: Server[];
  /** Open log and event streams to end when the container stops. */
  followers: Set<ServerResponse>;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
const empty = (res: ServerResponse, status: number) => {
  res.writeHead(status);
  res.end();
};
const notFound = (res: ServerResponse, what: string) => json(res, 404, { message: `No such ${what}` });

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of req) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

/** The entries of a (ustar) tar: name -> bytes. */
function untar(tar: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at + 512 <= tar.length) {
    const h = tar.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim() || '0', 8);
    out.set(prefix ? `${prefix}/${name}` : name, tar.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** `docker load`: the image ID is sha256 of its config, its layers the config's diff IDs. */
function loadTar(tar: Buffer): StubImage[] {
  const files = untar(tar);
  const manifest = JSON.parse(files.get('manifest.json')?.toString() ?? '[]') as {
    Config: string;
    RepoTags?: string[];
    Layers: string[];
  }[];
  return manifest.map((m) => {
    const config = files.get(m.Config);
    if (!config) throw new Error(`config ${m.Config} missing from the tar`);
    const parsed = JSON.parse(config.toString()) as { rootfs?: { diff_ids?: string[] } };
    return {
      id: `sha256:${createHash('sha256').update(config).digest('hex')}`,
      repoTags: m.RepoTags ?? [],
      diffIds: parsed.rootfs?.diff_ids ?? [],
      size: m.Layers.reduce((a, l) => a + (files.get(l)?.byteLength ?? 0), 0),
    };
  });
}

function labelFilter(query: URLSearchParams): [string, string | undefined][] {
  const raw = query.get('filters');
  if (!raw) return [];
  const f = JSON.parse(raw) as { label?: string[] | Record<string, boolean> };
  const labels = Array.isArray(f.label) ? f.label : Object.keys(f.label ?? {});
  return labels.map((l) => {
    const eq = l.indexOf('=');
    return eq < 0 ? [l, undefined] : [l.slice(0, eq), l.slice(eq + 1)];
  });
}

export async function startStubEngine(socket: string): Promise<StubEngine> {
  const images = new Map<string, StubImage>();
  const containers = new Map<string, StubContainer>();
  const eventStreams = new Set<ServerResponse>();

  const findImage = (ref: string) =>
    images.get(ref) ??
    images.get(`sha256:${ref}`) ??
    [...images.values()].find((i) => i.repoTags.includes(ref) || i.id.startsWith(`sha256:${ref}`));
  const findContainer = (ref: string) =>
    containers.get(ref) ?? [...containers.values()].find((c) => c.name === ref || c.id.startsWith(ref));

  const event = (c: StubContainer, action: string, extra: Record<string, string> = {}) => {
    const line = `${JSON.stringify({
      Type: 'container',
      Action: action,
      Actor: { ID: c.id, Attributes: { ...c.labels, name: c.name, ...extra } },
      timeNano: Date.now() * 1e6,
    })}\n`;
    for (const s of eventStreams) s.write(line);
  };

  async function start(c: StubContainer): Promise<void> {
    if (c.status === 'running') return;
    for (const port of c.exposed) {
      const server = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`stub ${c.image.slice(7, 19)} ${c.name} ${req.url}\n`);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      c.servers.push(server);
      c.ports[port] = (server.address() as AddressInfo).port;
    }
    c.status = 'running';
    c.startedAt = new Date().toISOString();
    event(c, 'start');
  }

  async function stop(c: StubContainer, code = 0): Promise<void> {
    for (const s of c.servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    c.servers = [];
    c.ports = {};
    if (c.status === 'running' || c.status === 'paused') {
      c.status = 'exited';
      c.exitCode = code;
      event(c, 'die', { exitCode: String(code) });
    }
    for (const f of c.followers) f.end();
    c.followers.clear();
  }

  const inspect = (c: StubContainer) => ({
    Id: c.id,
    Name: `/${c.name}`,
    Image: c.image,
    Created: c.startedAt,
    RestartCount: 0,
    Config: { Labels: c.labels, Image: c.image, Env: c.env },
    State: {
      Status: c.status,
      Running: c.status === 'running' || c.status === 'paused',
      Paused: c.status === 'paused',
      Restarting: false,
      ExitCode: c.exitCode,
      StartedAt: c.startedAt,
      ...(c.healthcheck && c.status === 'running' ? { Health: { Status: 'healthy' } } : {}),
    },
    Mounts: [],
    NetworkSettings: {
      Ports: Object.fromEntries(
        c.exposed.map((p) => [`${p}/tcp`, c.ports[p] ? [{ HostIp: '127.0.0.1', HostPort: String(c.ports[p]) }] : null]),
      ),
    },
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://engine');
    const path = url.pathname.replace(/^\/v\d+\.\d+/, '');
    const q = url.searchParams;
    const m = req.method ?? 'GET';
    let r: RegExpExecArray | null;
    if (path === '/_ping') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('OK');
    }
    if (m === 'POST' && path === '/images/load') {
      const loaded = loadTar(await bodyOf(req));
      for (const i of loaded) images.set(i.id, i);
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(loaded.map((i) => `${JSON.stringify({ stream: `Loaded image ID: ${i.id}\n` })}\n`).join(''));
    }
    if ((r = /^\/images\/(.+)\/json$/.exec(path))) {
      const i = findImage(decodeURIComponent(r[1]!));
      if (!i) return notFound(res, `image: ${r[1]}`);
      return json(res, 200, { Id: i.id, RepoTags: i.repoTags, Size: i.size, RootFS: { Layers: i.diffIds } });
    }
    if (m === 'DELETE' && (r = /^\/images\/(.+)$/.exec(path))) {
      const i = findImage(decodeURIComponent(r[1]!));
      if (!i) return notFound(res, 'image');
      if ([...containers.values()].some((c) => c.image === i.id))
        return json(res, 409, { message: 'image is being used by a container' });
      images.delete(i.id);
      return json(res, 200, [{ Deleted: i.id }]);
    }
    if (m === 'POST' && path === '/containers/create') {
      const name = q.get('name') ?? `c-${randomBytes(4).toString('hex')}`;
      if (findContainer(name)) return json(res, 409, { message: `Conflict. The container name "/${name}" is in use` });
      const spec = JSON.parse((await bodyOf(req)).toString() || '{}') as {
        Image: string;
        Labels?: Record<string, string>;
        Env?: string[];
        ExposedPorts?: Record<string, object>;
        Healthcheck?: object;
      };
      const image = findImage(spec.Image);
      if (!image) return notFound(res, `image: ${spec.Image}`);
      const id = randomBytes(32).toString('hex');
      containers.set(id, {
        id,
        name,
        image: image.id,
        labels: spec.Labels ?? {},
        env: spec.Env ?? [],
        exposed: Object.keys(spec.ExposedPorts ?? {}).map((k) => Number(k.split('/')[0])),
        healthcheck: spec.Healthcheck !== undefined,
        status: 'created',
        exitCode: 0,
        startedAt: '0001-01-01T00:00:00Z',
        ports: {},
        servers: [],
        followers: new Set(),
      });
      return json(res, 201, { Id: id, Warnings: [] });
    }
    if (m === 'GET' && path === '/containers/json') {
      const want = labelFilter(q);
      const all = q.get('all') === 'true' || q.get('all') === '1';
      const list = [...containers.values()].filter(
        (c) =>
          (all || c.status === 'running') &&
          want.every(([k, v]) => (v === undefined ? k in c.labels : c.labels[k] === v)),
      );
      return json(
        res,
        200,
        list.map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: c.image, Labels: c.labels, State: c.status })),
      );
    }
    if (m === 'GET' && path === '/events') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      eventStreams.add(res);
      res.on('close', () => eventStreams.delete(res));
      return;
    }
    if (m === 'POST' && path === '/volumes/create') {
      const spec = JSON.parse((await bodyOf(req)).toString() || '{}') as { Name: string };
      return json(res, 201, { Name: spec.Name, Driver: 'local' });
    }
    if (path.startsWith('/volumes/')) return notFound(res, 'volume');
    if (!(r = /^\/containers\/([^/]+)(?:\/(\w+))?$/.exec(path))) return notFound(res, `route ${m} ${path}`);
    const c = findContainer(decodeURIComponent(r[1]!));
    if (!c) return notFound(res, `container: ${r[1]}`);
    switch (`${m} ${r[2] ?? ''}`) {
      case 'GET json':
        return json(res, 200, inspect(c));
      case 'POST start':
        if (c.status === 'running') return empty(res, 304);
        await start(c);
        return empty(res, 204);
      case 'POST stop':
        if (c.status !== 'running') return empty(res, 304);
        await stop(c, 137);
        return empty(res, 204);
      case 'POST pause':
        c.status = 'paused';
        return empty(res, 204);
      case 'POST unpause':
        c.status = 'running';
        return empty(res, 204);
      case 'POST rename': {
        const name = q.get('name') ?? '';
        if (findContainer(name)) return json(res, 409, { message: `name ${name} in use` });
        c.name = name;
        return empty(res, 204);
      }
      case 'DELETE ':
        if (c.status === 'running' && q.get('force') !== 'true') return json(res, 409, { message: 'running' });
        await stop(c, 137);
        containers.delete(c.id);
        event(c, 'destroy');
        return empty(res, 204);
      case 'GET logs':
        // No process, so no output: the stream stays open while the container runs, as Docker's does.
        res.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
        res.flushHeaders();
        if (c.status !== 'running' || q.get('follow') !== 'true') return void res.end();
        c.followers.add(res);
        res.on('close', () => c.followers.delete(res));
        return;
      case 'GET stats':
        return json(res, 200, {
          cpu_stats: { cpu_usage: { total_usage: 2 }, system_cpu_usage: 100, online_cpus: 1 },
          precpu_stats: { cpu_usage: { total_usage: 1 }, system_cpu_usage: 50 },
          memory_stats: { usage: 1 << 20 },
        });
      default:
        return notFound(res, `route ${m} ${path}`);
    }
  }

  if (existsSync(socket)) unlinkSync(socket);
  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { message: err.message });
      else res.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(socket, r));
  const engine: StubEngine = {
    socket,
    images: new Map(),
    containers: () =>
      [...containers.values()].map((c) => ({
        name: c.name,
        image: c.image,
        running: c.status === 'running',
        labels: c.labels,
      })),
    async close() {
      for (const c of containers.values()) await stop(c);
      for (const s of eventStreams) s.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  Object.defineProperty(engine, 'images', {
    get: () => new Map([...images.values()].map((i) => [i.id, i.repoTags])),
  });
  cleanup(() => engine.close());
  return engine;
}
