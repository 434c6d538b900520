import Docker from 'dockerode';
import { createInterface } from 'node:readline';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { TenderError } from './errors.js';

/**
 * The one door to the Docker engine: only this file imports dockerode. The agent runs containers through
 * it; the publisher reads images through it. Unit tests pass a fake with the same interface that throws on
 * anything it does not implement; integration tests use the real engine.
 */
export class DockerError extends TenderError {}

export const LABEL_PREFIX = 'io.tender.';

export interface ContainerCreate {
  name: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  command: string[] | null;
  /** Replaces the image's entrypoint (backup helpers run a shell in a service's image). */
  entrypoint?: string[];
  /** container port → host port on 127.0.0.1 (0 = any free port). */
  ports: { target: number; hostPort: number }[];
  mounts: { source: string; target: string; readOnly: boolean; kind: 'volume' | 'bind' }[];
  restart: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  healthcheck: { test: string[]; intervalMs: number; timeoutMs: number; retries: number; startPeriodMs: number } | null;
}

export interface ContainerInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  status: string;
  exitCode: number;
  restartCount: number;
  startedAt: string;
  health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  /** container port → host port on 127.0.0.1 */
  ports: Record<number, number>;
  image: string;
}

function wrap(what: string, err: unknown): never {
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  throw new DockerError(
    `docker: ${what}: ${e.json?.message ?? e.message ?? String(err)}`,
    'docker',
    1,
    e.statusCode === 404 ? 404 : 500,
  );
}

/** Docker wants `since` as "seconds.nanoseconds"; its log timestamps are RFC 3339 with nanoseconds. */
export function dockerSince(ts: string): string {
  const ns = tsNanos(ts);
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
}

/** A Docker RFC 3339 timestamp (trailing zeros of the fraction trimmed) as nanoseconds, for comparing. */
export function tsNanos(ts: string): bigint {
  const m = /^(.*?)(?:\.(\d{1,9}))?Z$/.exec(ts);
  if (!m) return 0n;
  const secs = BigInt(Math.floor(Date.parse(`${m[1]}Z`) / 1000));
  return secs * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

export type DockerEngine = ReturnType<typeof createDockerEngine>;

export function createDockerEngine(socketPath = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock') {
  const docker = new Docker({ socketPath });

  async function inspectContainer(idOrName: string): Promise<ContainerInfo | undefined> {
    let c;
    try {
      c = await docker.getContainer(idOrName).inspect();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      wrap(`inspect container ${idOrName}`, err);
    }
    const ports: Record<number, number> = {};
    for (const [k, v] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
      const host = (v as { HostPort: string }[] | null)?.[0]?.HostPort;
      if (host) ports[Number(k.split('/')[0])] = Number(host);
    }
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      labels: c.Config.Labels ?? {},
      running: c.State.Running,
      status: c.State.Status,
      exitCode: c.State.ExitCode,
      restartCount: c.RestartCount,
      startedAt: c.State.StartedAt,
      health: (c.State.Health?.Status as ContainerInfo['health']) ?? 'none',
      ports,
      image: c.Image,
    };
  }

  return {
    async ping(): Promise<void> {
      try {
        await docker.ping();
      } catch (err) {
        wrap('ping', err);
      }
    },
    async imageInspect(
      ref: string,
    ): Promise<{ id: string; diffIds: string[]; size: number; repoTags: string[] } | undefined> {
      try {
        const i = await docker.getImage(ref).inspect();
        return { id: i.Id, diffIds: i.RootFS?.Layers ?? [], size: i.Size, repoTags: i.RepoTags ?? [] };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        wrap(`inspect image ${ref}`, err);
      }
    },
    /** `docker save` of one image, as a stream of the tar bytes. */
    async saveImage(id: string): Promise<NodeJS.ReadableStream> {
      try {
        return (await docker.getImage(id).get()) as unknown as NodeJS.ReadableStream;
      } catch (err) {
        wrap(`save image ${id}`, err);
      }
    },
    /** `docker load` from a stream of a docker-save tar; throws with Docker's message if it refuses. */
    async loadImage(tar: NodeJS.ReadableStream): Promise<void> {
      let out: NodeJS.ReadableStream;
      try {
        out = (await docker.loadImage(tar as never)) as unknown as NodeJS.ReadableStream;
      } catch (err) {
        wrap('load image', err);
      }
      let text = '';
      for await (const piece of out as AsyncIterable<Buffer>) text += piece.toString();
      const failed = text.split('\n').find((l) => l.includes('"error"'));
      if (failed) throw new DockerError(`docker: load image: ${(JSON.parse(failed) as { error: string }).error}`);
    },
    async removeImage(id: string): Promise<void> {
      try {
        await docker.getImage(id).remove({ force: false });
      } catch (err) {
        if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
        wrap(`remove image ${id}`, err);
      }
    },
    async createContainer(spec: ContainerCreate): Promise<string> {
      const exposed: Record<string, object> = {};
      const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
      for (const p of spec.ports) {
        exposed[`${p.target}/tcp`] = {};
        // Colours listen on loopback only; the router is what the LAN sees.
        bindings[`${p.target}/tcp`] = [{ HostIp: '127.0.0.1', HostPort: p.hostPort ? String(p.hostPort) : '' }];
      }
      const ms = (n: number) => n * 1_000_000;
      try {
        const c = await docker.createContainer({
          name: spec.name,
          Image: spec.image,
          Labels: spec.labels,
          Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
          ...(spec.command ? { Cmd: spec.command } : {}),
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
          ExposedPorts: exposed,
          ...(spec.healthcheck
            ? {
                Healthcheck: {
                  Test: spec.healthcheck.test,
                  Interval: ms(spec.healthcheck.intervalMs),
                  Timeout: ms(spec.healthcheck.timeoutMs),
                  Retries: spec.healthcheck.retries,
                  StartPeriod: ms(spec.healthcheck.startPeriodMs),
                },
              }
            : {}),
          HostConfig: {
            PortBindings: bindings,
            RestartPolicy: { Name: spec.restart === 'no' ? '' : spec.restart },
            Mounts: spec.mounts.map((m) => ({
              Type: m.kind,
              Source: m.source,
              Target: m.target,
              ReadOnly: m.readOnly,
            })),
            LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
            // Setuid and setgid bits in an image grant nothing: images keep their bytes (their digests
            // are signed), and this is the rule that strips the privilege (ATTACKS.md 16).
            SecurityOpt: ['no-new-privileges'],
          },
        });
        return c.id;
      } catch (err) {
        wrap(`create container ${spec.name}`, err);
      }
    },
    async startContainer(id: string): Promise<void> {
      try {
        await docker.getContainer(id).start();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 304) return;
        wrap(`start container ${id}`, err);
      }
    },
    async stopContainer(id: string, timeoutS = 10): Promise<void> {
      try {
        await docker.getContainer(id).stop({ t: timeoutS });
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 304 || code === 404) return;
        wrap(`stop container ${id}`, err);
      }
    },
    async removeContainer(id: string): Promise<void> {
      try {
        await docker.getContainer(id).remove({ force: true, v: false });
      } catch (err) {
        if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
        wrap(`remove container ${id}`, err);
      }
    },
    inspectContainer,
    /** Rename a container in place (it keeps running; its ports and id do not change). */
    async renameContainer(id: string, name: string): Promise<void> {
      try {
        await docker.getContainer(id).rename({ name });
      } catch (err) {
        wrap(`rename container ${id} to ${name}`, err);
      }
    },
    async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
      let list;
      try {
        list = await docker.listContainers({
          all: true,
          filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
        });
      } catch (err) {
        wrap('list containers', err);
      }
      const out: ContainerInfo[] = [];
      for (const c of list) {
        const info = await inspectContainer(c.Id);
        if (info) out.push(info);
      }
      return out;
    },
    /**
     * Follow a container's stdout and stderr from `since` (a Docker timestamp), line by line, with Docker's
     * own timestamps. Ends when the container stops or the signal aborts.
     */
    async followLogs(
      id: string,
      since: string | undefined,
      signal: AbortSignal,
      onLine: (stream: 'stdout' | 'stderr', ts: string, line: string) => void,
    ): Promise<void> {
      let raw: NodeJS.ReadableStream;
      try {
        raw = (await docker.getContainer(id).logs({
          follow: true,
          stdout: true,
          stderr: true,
          timestamps: true,
          ...(since ? { since: dockerSince(since) } : {}),
        })) as unknown as NodeJS.ReadableStream;
      } catch (err) {
        wrap(`logs of ${id}`, err);
      }
      const out = new PassThrough();
      const errs = new PassThrough();
      docker.modem.demuxStream(raw, out, errs);
      const done = new Promise<void>((resolve) => {
        raw.on('end', resolve);
        raw.on('close', resolve);
        raw.on('error', resolve);
      });
      const abort = () => (raw as unknown as { destroy(): void }).destroy();
      // The signal may have fired while the request was in flight: then stop at once.
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
      for (const [stream, pt] of [
        ['stdout', out],
        ['stderr', errs],
      ] as const) {
        createInterface({ input: pt, crlfDelay: Infinity }).on('line', (l) => {
          const sp = l.indexOf(' ');
          onLine(stream, l.slice(0, sp), l.slice(sp + 1));
        });
      }
      await done;
      out.end();
      errs.end();
      signal.removeEventListener('abort', abort);
    },
    /** Docker events for Tender's containers (die, oom, restart, health) from `since` (unix seconds). */
    async followEvents(
      since: number | undefined,
      signal: AbortSignal,
      onEvent: (e: {
        action: string;
        id: string;
        labels: Record<string, string>;
        time: number;
        exitCode?: string;
      }) => void,
    ): Promise<void> {
      let raw: NodeJS.ReadableStream;
      try {
        raw = (await docker.getEvents({
          ...(since ? { since } : {}),
          filters: {
            type: ['container'],
            label: [`${LABEL_PREFIX}managed=1`],
            event: ['die', 'oom', 'restart', 'health_status'],
          },
        })) as unknown as NodeJS.ReadableStream;
      } catch (err) {
        wrap('events', err);
      }
      const abort = () => (raw as unknown as { destroy(): void }).destroy();
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
      createInterface({ input: raw }).on('line', (l) => {
        try {
          const e = JSON.parse(l) as {
            Action: string;
            Actor: { ID: string; Attributes: Record<string, string> };
            timeNano: number;
          };
          onEvent({
            action: e.Action,
            id: e.Actor.ID,
            labels: e.Actor.Attributes,
            time: Math.floor(e.timeNano / 1e6),
            exitCode: e.Actor.Attributes.exitCode,
          });
        } catch {
          /* a line that is not an event */
        }
      });
      await new Promise<void>((resolve) => {
        raw.on('end', resolve);
        raw.on('close', resolve);
        raw.on('error', resolve);
      });
      signal.removeEventListener('abort', abort);
    },
    async containerStats(id: string): Promise<{ cpuPercent: number; memoryBytes: number } | undefined> {
      try {
        const s = (await docker.getContainer(id).stats({ stream: false })) as unknown as {
          cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
          precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number };
          memory_stats: { usage?: number };
        };
        const cpu = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
        const sys = (s.cpu_stats.system_cpu_usage ?? 0) - (s.precpu_stats.system_cpu_usage ?? 0);
        return {
          cpuPercent: sys > 0 ? (cpu / sys) * (s.cpu_stats.online_cpus ?? 1) * 100 : 0,
          memoryBytes: s.memory_stats.usage ?? 0,
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        wrap(`stats of ${id}`, err);
      }
    },
    async ensureVolume(name: string, labels: Record<string, string>): Promise<void> {
      try {
        await docker.getVolume(name).inspect();
      } catch (err) {
        if (!isNotFound(err)) wrap(`inspect volume ${name}`, err);
        try {
          await docker.createVolume({ Name: name, Labels: labels });
        } catch (e) {
          wrap(`create volume ${name}`, e);
        }
      }
    },
    /**
     * Run a command in a running container (docker exec): stdin from `stdin` if given, stdout into
     * `stdout` with backpressure (a slow disk slows the dump, memory stays flat), stderr kept (its last
     * 4 KB) for the error message. Aborting the signal ends the stream and kills the process.
     */
    async exec(
      id: string,
      cmd: string[],
      opts: { stdin?: Readable; stdout?: NodeJS.WritableStream; user?: string; signal?: AbortSignal } = {},
    ): Promise<{ exitCode: number; stderr: string; stdout: Buffer }> {
      let exec: Docker.Exec;
      let stream: NodeJS.ReadWriteStream;
      try {
        exec = await docker.getContainer(id).exec({
          Cmd: cmd,
          AttachStdin: Boolean(opts.stdin),
          AttachStdout: true,
          AttachStderr: true,
          ...(opts.user ? { User: opts.user } : {}),
        });
        stream = (await exec.start({ hijack: true, stdin: Boolean(opts.stdin) })) as unknown as NodeJS.ReadWriteStream;
      } catch (err) {
        wrap(`exec in ${id}`, err);
      }
      const collected: Buffer[] = [];
      let collectedBytes = 0;
      const sink =
        opts.stdout ??
        new Writable({
          write(c: Buffer, _e, cb) {
            // Output we keep in memory (a check query's answer) is capped.
            if (collectedBytes < EXEC_CAPTURE_MAX) collected.push(c.subarray(0, EXEC_CAPTURE_MAX - collectedBytes));
            collectedBytes += c.byteLength;
            cb();
          },
        });
      let stderr = '';
      const demux = new DockerDemux(sink, (c) => (stderr = (stderr + c.toString()).slice(-4096)));
      const kill = async () => {
        (stream as unknown as { destroy(): void }).destroy();
        try {
          const pid = (await exec.inspect()).Pid;
          if (pid > 0) process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already, or not ours to signal (the agent is not root): its pipe is closed either way */
        }
      };
      // Both listeners come off the caller's signal when the exec ends: a signal that lives as long as the
      // agent would otherwise keep every exec's streams (and a listener each) for months.
      let ended = () => {};
      const onAbort = () => {
        void kill();
        ended();
      };
      if (opts.signal?.aborted) void kill();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await new Promise<void>((resolve, reject) => {
          ended = resolve;
          stream.on('error', (e) => (opts.signal?.aborted ? resolve() : reject(e)));
          // A socket may close without an end; what was received is still written out first.
          stream.on('close', () => (opts.signal?.aborted ? resolve() : demux.writableEnded || demux.end()));
          demux.on('error', reject);
          demux.on('finish', resolve);
          stream.pipe(demux);
          if (opts.stdin) {
            opts.stdin.on('error', reject);
            opts.stdin.pipe(stream as unknown as NodeJS.WritableStream);
          }
        });
      } catch (err) {
        await kill();
        throw new DockerError(`docker: exec ${cmd[0]} in ${id}: ${(err as Error).message}`);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      if (opts.signal?.aborted) return { exitCode: -1, stderr, stdout: Buffer.alloc(0) };
      // The stream can end a moment before the engine records the exit code.
      for (let i = 0; i < 100; i++) {
        const info = await exec.inspect();
        if (!info.Running) return { exitCode: info.ExitCode ?? -1, stderr, stdout: Buffer.concat(collected) };
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new DockerError(`docker: exec ${cmd[0]} in ${id}: output ended but the process did not`);
    },
    async pauseContainer(id: string): Promise<void> {
      try {
        await docker.getContainer(id).pause();
      } catch (err) {
        wrap(`pause container ${id}`, err);
      }
    },
    async unpauseContainer(id: string): Promise<void> {
      try {
        await docker.getContainer(id).unpause();
      } catch (err) {
        // Not paused (409), or gone: either way not paused now.
        const code = (err as { statusCode?: number }).statusCode;
        if (code === 409 || code === 404 || code === 304) return;
        wrap(`unpause container ${id}`, err);
      }
    },
    /** A container's state flags and mounts, for the backup helpers. */
    async containerDetail(id: string): Promise<
      | {
          paused: boolean;
          running: boolean;
          image: string;
          mounts: { kind: 'volume' | 'bind'; source: string; target: string; readOnly: boolean }[];
        }
      | undefined
    > {
      try {
        const c = await docker.getContainer(id).inspect();
        return {
          paused: c.State.Paused,
          running: c.State.Running,
          image: c.Image,
          mounts: (c.Mounts ?? [])
            .filter((m) => m.Type === 'volume' || m.Type === 'bind')
            .map((m) => ({
              kind: m.Type as 'volume' | 'bind',
              source: m.Type === 'volume' ? m.Name! : m.Source,
              target: m.Destination,
              readOnly: !m.RW,
            })),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        wrap(`inspect container ${id}`, err);
      }
    },
    /** Remove a throwaway container with its anonymous volumes (a scratch database leaves nothing). */
    async removeScratch(id: string): Promise<void> {
      try {
        await docker.getContainer(id).remove({ force: true, v: true });
      } catch (err) {
        if (isNotFound(err) || (err as { statusCode?: number }).statusCode === 409) return;
        wrap(`remove container ${id}`, err);
      }
    },
  };
}

// What exec keeps in memory when no stdout stream is given.
const EXEC_CAPTURE_MAX = 1024 * 1024;

/**
 * Docker's multiplexed exec stream (8-byte frame headers: stream, 0, 0, 0, length) split into stdout and
 * stderr. Unlike dockerode's demuxStream it waits for stdout to drain, so backpressure reaches the engine.
 */
class DockerDemux extends Writable {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly stdout: NodeJS.WritableStream,
    private readonly onStderr: (c: Buffer) => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: string, cb: (err?: Error | null) => void): void {
    this.buf = this.buf.byteLength ? Buffer.concat([this.buf, chunk]) : chunk;
    let wait = false;
    while (this.buf.byteLength >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.byteLength < 8 + len) break;
      const kind = this.buf[0];
      const body = this.buf.subarray(8, 8 + len);
      this.buf = this.buf.subarray(8 + len);
      if (kind === 2) this.onStderr(body);
      else if (!this.stdout.write(body)) wait = true;
    }
    if (wait) this.stdout.once('drain', () => cb());
    else cb();
  }
}
