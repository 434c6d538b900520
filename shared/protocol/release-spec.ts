import { posix } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { TenderError } from '../errors.js';
import { describeZodError } from '../validation.js';

/**
 * The release file ops write: a docker-compose subset (image, ports, environment, volumes, command,
 * healthcheck, restart, depends_on) plus `x-tender` keys for the health gate and the swap strategy.
 * It is normalised into ServiceSpec, which is what a signed manifest carries and the agent acts on.
 */
export class ReleaseSpecError extends TenderError {}

// A compose file is a page or two; anything bigger is a mistake or an attack.
const MAX_COMPOSE_BYTES = 256 * 1024;
// Kamal and kamal-proxy default to 30 s for a deploy to become healthy; ours boot over slow disks.
export const DEFAULT_GATE_TIMEOUT_S = 60;
// Consecutive successful probes before a colour counts as healthy.
export const DEFAULT_GATE_SUCCESSES = 2;
// Open connections get this long on the old colour after the flip before it stops.
export const DEFAULT_DRAIN_S = 10;

const duration = z
  .union([z.number().int().min(0), z.string().regex(/^\d+(ms|s|m|h)$/, 'must be a duration like 500ms, 10s, 2m')])
  .transform((v) => (typeof v === 'number' ? v * 1000 : toMs(v)));

function toMs(v: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(v)!;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
}

const name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, - or _');
const port = z.number().int().min(1).max(65535);

const portEntry = z.union([
  z.string().regex(/^(\d{1,5}):(\d{1,5})(\/tcp)?$/, 'must be "PUBLISHED:TARGET" (tcp only)'),
  z.strictObject({
    published: z.union([port, z.string().regex(/^\d{1,5}$/)]),
    target: port,
    protocol: z.literal('tcp').optional(),
  }),
]);

const healthcheckSchema = z.strictObject({
  test: z.union([z.string(), z.array(z.string()).min(1)]),
  interval: duration.optional(),
  timeout: duration.optional(),
  retries: z.number().int().min(1).max(100).optional(),
  start_period: duration.optional(),
  disable: z.boolean().optional(),
});

const gateSchema = z.union([
  z.strictObject({
    http: z.string().startsWith('/'),
    port: port.optional(),
    timeout: duration.optional(),
    successes: z.number().int().min(1).max(20).optional(),
  }),
  z.strictObject({ tcp: port, timeout: duration.optional(), successes: z.number().int().min(1).max(20).optional() }),
  z.strictObject({ docker: z.literal(true), timeout: duration.optional() }),
  z.strictObject({ none: z.literal(true) }),
]);

// A host path a service may bind, as written under volumes, with the mode it may use (rw when omitted).
const hostAccessEntry = z.string().regex(/^\/[^:]*(:(ro|rw))?$/, 'must be "/HOST/PATH[:ro|:rw]"');

const xTenderSchema = z.strictObject({
  strategy: z.enum(['blue-green', 'recreate']).optional(),
  health: gateSchema.optional(),
  drain: duration.optional(),
  /** Every host path the service binds, declared: a bind is root on the vessel for whoever signs it. */
  'host-access': z.array(hostAccessEntry).max(32).optional(),
});

const composeServiceSchema = z.strictObject({
  image: z.string().min(1).max(512),
  ports: z.array(portEntry).max(32).optional(),
  environment: z
    .union([
      z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
      z.array(z.string().regex(/^[^=]+=/, 'must be KEY=VALUE')),
    ])
    .optional(),
  volumes: z
    .array(z.string().regex(/^[^:]+:\/[^:]*(:(ro|rw))?$/, 'must be "NAME_OR_ABSOLUTE_PATH:/container/path[:ro]"'))
    .max(32)
    .optional(),
  command: z.union([z.string(), z.array(z.string())]).optional(),
  healthcheck: healthcheckSchema.optional(),
  restart: z.enum(['no', 'always', 'unless-stopped', 'on-failure']).optional(),
  depends_on: z
    .union([
      z.array(name),
      z.record(name, z.strictObject({ condition: z.enum(['service_started', 'service_healthy']).optional() })),
    ])
    .optional(),
  'x-tender': xTenderSchema.optional(),
});

const composeSchema = z.strictObject({
  version: z.string().optional(),
  name: name.optional(),
  services: z
    .record(name, composeServiceSchema)
    .refine((s) => Object.keys(s).length > 0, 'must name at least one service'),
  volumes: z.record(name, z.union([z.null(), z.strictObject({})])).optional(),
  'x-tender': z.strictObject({ app: name.optional() }).optional(),
});

export const gateSpecSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('http'),
    path: z.string(),
    port,
    timeoutMs: z.number().int(),
    successes: z.number().int(),
  }),
  z.strictObject({ type: z.literal('tcp'), port, timeoutMs: z.number().int(), successes: z.number().int() }),
  z.strictObject({ type: z.literal('docker'), timeoutMs: z.number().int() }),
  z.strictObject({ type: z.literal('none') }),
]);
export type GateSpec = z.infer<typeof gateSpecSchema>;

export const serviceSpecSchema = z.strictObject({
  /** The image reference ops wrote, for people; `imageId` is what runs. */
  imageRef: z.string(),
  imageId: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  ports: z.array(z.strictObject({ published: port, target: port })),
  environment: z.record(z.string(), z.string()),
  volumes: z.array(
    z.strictObject({ source: z.string(), target: z.string(), readOnly: z.boolean(), kind: z.enum(['volume', 'bind']) }),
  ),
  command: z.array(z.string()).nullable(),
  healthcheck: z
    .strictObject({
      test: z.array(z.string()),
      intervalMs: z.number().int(),
      timeoutMs: z.number().int(),
      retries: z.number().int(),
      startPeriodMs: z.number().int(),
    })
    .nullable(),
  restart: z.enum(['no', 'always', 'unless-stopped', 'on-failure']),
  dependsOn: z.array(z.string()),
  strategy: z.enum(['blue-green', 'recreate']),
  gate: gateSpecSchema,
  drainMs: z.number().int(),
  /**
   * The host paths the release declared it may bind (x-tender.host-access), for the vessel to show and
   * log before it runs the release. Absent when it binds none, so manifests without host access stay
   * readable by agents that predate the field.
   */
  hostAccess: z
    .array(z.strictObject({ path: z.string().startsWith('/'), readOnly: z.boolean() }))
    .max(32)
    .optional(),
});
export type ServiceSpec = z.infer<typeof serviceSpecSchema>;

export interface ParsedCompose {
  app: string;
  services: Record<string, Omit<ServiceSpec, 'imageId'>>;
}

function fail(file: string, msg: string): never {
  throw new ReleaseSpecError(`${file}: ${msg}`);
}

/** An image reference must pin what runs: a tag other than latest, or a digest. */
export function checkImagePinned(ref: string): string | undefined {
  if (/@sha256:[0-9a-f]{64}$/.test(ref)) return undefined;
  const lastSegment = ref.split('/').pop()!;
  const tag = lastSegment.includes(':') ? lastSegment.split(':').pop() : undefined;
  if (!tag) return `image ${ref} has no tag: pin a version tag or a digest`;
  if (tag === 'latest') return `image ${ref} uses :latest without a digest: pin a version tag or a digest`;
  return undefined;
}

export function parseCompose(text: string, file: string): ParsedCompose {
  if (Buffer.byteLength(text) > MAX_COMPOSE_BYTES) fail(file, `over the ${MAX_COMPOSE_BYTES}-byte limit`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 10, prettyErrors: false });
  } catch (err) {
    fail(file, `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const r = composeSchema.safeParse(doc);
  if (!r.success) fail(file, describeZodError(r.error, '(top level)'));
  const c = r.data;
  const app = c['x-tender']?.app ?? c.name ?? fail(file, 'name the app with a top-level `name:`');
  const services: ParsedCompose['services'] = {};
  const published = new Map<number, string>();
  for (const [svcName, s] of Object.entries(c.services)) {
    const where = `services.${svcName}`;
    const pinned = checkImagePinned(s.image);
    if (pinned) fail(file, `${where}.image: ${pinned}`);
    const ports = (s.ports ?? []).map((p) => {
      if (typeof p === 'string') {
        const m = /^(\d+):(\d+)/.exec(p)!;
        return { published: Number(m[1]), target: Number(m[2]) };
      }
      return { published: Number(p.published), target: p.target };
    });
    for (const p of ports) {
      if (p.published < 1 || p.published > 65535) fail(file, `${where}.ports: ${p.published} is not a port`);
      const other = published.get(p.published);
      if (other) fail(file, `${where}.ports: public port ${p.published} is already used by service ${other}`);
      published.set(p.published, svcName);
    }
    const volumes = (s.volumes ?? []).map((v) => {
      const [source, target, mode] = v.split(':') as [string, string, string | undefined];
      const kind = source.startsWith('/') ? ('bind' as const) : ('volume' as const);
      if (kind === 'volume' && !(c.volumes && source in c.volumes))
        fail(file, `${where}.volumes: volume ${source} is not declared under top-level volumes`);
      return { source, target, readOnly: mode === 'ro', kind };
    });
    const environment: Record<string, string> = {};
    if (Array.isArray(s.environment)) {
      for (const kv of s.environment) environment[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    } else {
      for (const [k, v] of Object.entries(s.environment ?? {})) environment[k] = v === null ? '' : String(v);
    }
    const hc = s.healthcheck && !s.healthcheck.disable ? s.healthcheck : undefined;
    const x = s['x-tender'] ?? {};
    const hostAccess = hostAccessOf(x['host-access'] ?? [], volumes, file, where);
    const ownsVolume = volumes.some((v) => v.kind === 'volume' && !v.readOnly);
    const strategy =
      x.strategy ??
      (ownsVolume && ports.length === 0
        ? 'recreate'
        : ports.length > 0
          ? 'blue-green'
          : ownsVolume
            ? 'recreate'
            : 'blue-green');
    if (strategy === 'blue-green' && ownsVolume && x.strategy === undefined) {
      // Two colours writing one volume at once corrupts databases; make ops choose.
      fail(
        file,
        `${where}: owns a writable volume and publishes ports; set x-tender.strategy (recreate for a database)`,
      );
    }
    services[svcName] = {
      imageRef: s.image,
      ports,
      environment,
      volumes,
      command: s.command === undefined ? null : Array.isArray(s.command) ? s.command : splitCommand(s.command),
      healthcheck: hc
        ? {
            test: Array.isArray(hc.test) ? hc.test : ['CMD-SHELL', hc.test],
            intervalMs: hc.interval ?? 5_000,
            timeoutMs: hc.timeout ?? 5_000,
            retries: hc.retries ?? 3,
            startPeriodMs: hc.start_period ?? 0,
          }
        : null,
      restart: s.restart ?? 'unless-stopped',
      dependsOn: Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {}),
      strategy,
      gate: gateOf(x.health, hc !== undefined, ports, file, where),
      drainMs: x.drain ?? DEFAULT_DRAIN_S * 1000,
      ...(hostAccess.length ? { hostAccess } : {}),
    };
  }
  for (const [svcName, s] of Object.entries(services)) {
    for (const d of s.dependsOn) if (!services[d]) fail(file, `services.${svcName}.depends_on: no service named ${d}`);
  }
  startOrder(services, file);
  return { app, services };
}

export type HostAccess = NonNullable<ServiceSpec['hostAccess']>;

/**
 * What a service's binds reach on the host, which the release must declare: a bind of `/`, `/etc` or the
 * Docker socket makes the release key root on the vessel. A bind needs a declaration of its exact host
 * path (one spelling: normalised, so `/srv/../etc` cannot pass for something else) allowing its mode;
 * a declaration no bind uses is refused as a mistake.
 */
export function undeclaredHostAccess(
  volumes: Pick<ServiceSpec['volumes'][number], 'source' | 'readOnly' | 'kind'>[],
  declared: HostAccess,
): string | undefined {
  for (const v of volumes) {
    if (v.kind !== 'bind') continue;
    if (posix.normalize(v.source) !== v.source || (v.source.length > 1 && v.source.endsWith('/')))
      return (
        `bind ${v.source} is not a normalised absolute path ` +
        `(write it as ${posix.normalize(v.source).replace(/(.)\/$/, '$1')})`
      );
    const d = declared.find((h) => h.path === v.source);
    if (!d)
      return (
        `binds host path ${v.source}${v.readOnly ? ' read-only' : ' read-write'} ` +
        'without declaring it in x-tender.host-access'
      );
    if (d.readOnly && !v.readOnly)
      return (
        `binds host path ${v.source} read-write but x-tender.host-access allows it read-only ` +
        '(add :ro to the volume)'
      );
  }
  const unused = declared.find((h) => !volumes.some((v) => v.kind === 'bind' && v.source === h.path));
  if (unused) return `x-tender.host-access declares ${unused.path} but no volume binds it`;
  return undefined;
}

/**
 * What a release may touch on the host, one line per declared bind ("SERVICE: /PATH ro|rw"), in service
 * then path order: what `tender releases`, the hub and the crew console show, and what the vessel logs
 * before it runs the release. Empty when the release binds no host path.
 */
export function hostAccessLines(services: Record<string, Pick<ServiceSpec, 'hostAccess'>>): string[] {
  return Object.keys(services)
    .sort()
    .flatMap((name) =>
      [...(services[name]!.hostAccess ?? [])]
        .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
        .map((h) => `${name}: ${h.path} ${h.readOnly ? 'ro' : 'rw'}`),
    );
}

function hostAccessOf(entries: string[], volumes: ServiceSpec['volumes'], file: string, where: string): HostAccess {
  const declared = entries.map((e) => {
    const m = /^(.*?)(?::(ro|rw))?$/.exec(e)!;
    return { path: m[1]!, readOnly: m[2] === 'ro' };
  });
  const seen = new Set<string>();
  for (const d of declared) {
    if (seen.has(d.path)) fail(file, `${where}.x-tender.host-access: ${d.path} is declared twice`);
    seen.add(d.path);
  }
  const why = undeclaredHostAccess(volumes, declared);
  if (why) fail(file, `${where}: ${why}`);
  return declared;
}

function gateOf(
  h: z.infer<typeof gateSchema> | undefined,
  hasHealthcheck: boolean,
  ports: { target: number }[],
  file: string,
  where: string,
): GateSpec {
  if (!h) {
    if (hasHealthcheck) return { type: 'docker', timeoutMs: DEFAULT_GATE_TIMEOUT_S * 1000 };
    if (ports[0])
      return {
        type: 'tcp',
        port: ports[0].target,
        timeoutMs: DEFAULT_GATE_TIMEOUT_S * 1000,
        successes: DEFAULT_GATE_SUCCESSES,
      };
    return { type: 'none' };
  }
  if ('none' in h) return { type: 'none' };
  if ('docker' in h) {
    if (!hasHealthcheck) fail(file, `${where}.x-tender.health: docker gate needs a healthcheck`);
    return { type: 'docker', timeoutMs: h.timeout ?? DEFAULT_GATE_TIMEOUT_S * 1000 };
  }
  if ('tcp' in h)
    return {
      type: 'tcp',
      port: h.tcp,
      timeoutMs: h.timeout ?? DEFAULT_GATE_TIMEOUT_S * 1000,
      successes: h.successes ?? DEFAULT_GATE_SUCCESSES,
    };
  const p = h.port ?? ports[0]?.target;
  if (!p) fail(file, `${where}.x-tender.health: http gate needs a port (none published)`);
  return {
    type: 'http',
    path: h.http,
    port: p,
    timeoutMs: h.timeout ?? DEFAULT_GATE_TIMEOUT_S * 1000,
    successes: h.successes ?? DEFAULT_GATE_SUCCESSES,
  };
}

/** Service names in start order (dependencies first); refuses cycles. */
export function startOrder(services: Record<string, { dependsOn: string[] }>, file = 'release'): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, path: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') fail(file, `depends_on cycle: ${[...path, n].join(' -> ')}`);
    state.set(n, 'visiting');
    for (const d of services[n]!.dependsOn) visit(d, [...path, n]);
    state.set(n, 'done');
    order.push(n);
  };
  for (const n of Object.keys(services).sort()) visit(n, []);
  return order;
}

function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  let m;
  while ((m = re.exec(cmd))) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}
