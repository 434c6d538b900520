import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { Cron } from 'croner';
import { TenderError } from '../errors.js';
import { describeIssue } from '../validation.js';
import { appNameSchema } from './names.js';
import { readEnvelope } from '../trust/envelope.js';
import { verifySignedDocument, type TrustedRoot } from '../trust/root.js';

/**
 * A backup policy: code that runs on board (it execs commands in a service's container), so it is signed
 * by a release key like a release. Ops write a policy file (YAML or JSON, durations and sizes as text,
 * defaults filled in); it is normalised into the policy document below, which is what gets signed, what
 * the hub will deliver in the desired state, and what the vessel verifies and acts on.
 */
export class PolicyError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_policy');
  }
}

export const POLICY_SPEC = 1;
// A policy is a screenful of JSON; a cap this small is refused while reading, long before it matters.
export const MAX_POLICY_BYTES = 64 * 1024;
// A policy file is written by hand; anything bigger is a mistake.
const MAX_POLICY_FILE_BYTES = 64 * 1024;
// A dump that runs past a day is stuck; a day is also the longest schedule most ships would use.
export const MAX_TIMEOUT_S = 86_400;
// Backups of a busy database take minutes; an hour is a generous default that still catches a hang.
export const DEFAULT_TIMEOUT_S = 3_600;
// What a run sees of the ashore budget when ops set none: a daily dump of a small database, compressed.
export const DEFAULT_ASHORE_BYTES_PER_DAY = 256 * 1024 * 1024;

export const METHODS = ['postgres', 'sqlite', 'volume', 'exec'] as const;
export type BackupMethodName = (typeof METHODS)[number];

// One pattern for every name that reaches a file path, container name or SQL (ATTACKS.md 41).
export const policyNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 lower-case letters, digits, - or _');
const serviceName = policyNameSchema;
// Postgres identifiers we pass on a command line: plain names only, never quoted or with options in them.
const pgName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain identifier (letters, digits, _)');
// Paths go into a shell line in the container: plain characters only, absolute, no `..`.
const absPath = z
  .string()
  .max(1024)
  .regex(/^\/[A-Za-z0-9._/-]+$/, 'must be an absolute path of letters, digits, . _ - and /')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ..');
const argv = z.array(z.string().max(4096)).min(1).max(64);

/** Whether a cron expression parses (5 fields, UTC); the reason when not. */
export function cronProblem(expr: string): string | undefined {
  if (expr.trim().split(/\s+/).length !== 5)
    return `must be a cron expression of 5 fields (minute hour day month weekday), got ${JSON.stringify(expr)}`;
  try {
    const c = new Cron(expr, { timezone: 'UTC', mode: '5-part', paused: true });
    if (!c.nextRun(new Date(0))) return `cron expression ${JSON.stringify(expr)} never fires`;
    return undefined;
  } catch (err) {
    return `not a valid cron expression ${JSON.stringify(expr)}: ${(err as Error).message}`;
  }
}

const cronSchema = z
  .string()
  .max(128)
  .superRefine((v, ctx) => {
    const why = cronProblem(v);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });

export const methodSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('postgres'),
    /** The database to dump (pg_dump custom format, uncompressed: see the compression note below). */
    database: pgName,
    user: pgName,
    /** Run against the restored copy in a scratch container by `verify`, and after a restore. */
    checkQuery: z.string().min(1).max(4096),
  }),
  z.strictObject({
    type: z.literal('sqlite'),
    /** The database file inside the container; `sqlite3` must be in the image (online backup API). */
    path: absPath,
  }),
  z.strictObject({
    type: z.literal('volume'),
    /** The compose volume name the service mounts. */
    volume: serviceName,
    /** pause: freeze the service's processes during the tar (seconds); stop: stop it (consistent on disk). */
    quiesce: z.enum(['pause', 'stop']),
  }),
  z.strictObject({
    type: z.literal('exec'),
    /** Writes the backup to stdout; exit 0 and at least one byte, or the run fails. */
    backup: argv,
    /** Reads a backup on stdin and puts it in place; without it the backups can be verified, not restored. */
    restore: argv.nullable(),
  }),
]);
export type BackupMethod = z.infer<typeof methodSchema>;

export const policyDocumentSchema = z.strictObject({
  _type: z.literal('policy'),
  spec: z.literal(POLICY_SPEC),
  name: policyNameSchema,
  /** Per policy name: a vessel never installs a sequence at or below the one it holds. */
  sequence: z
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
  createdAt: z.iso.datetime(),
  /** Who it is for (hub side): all, group:G, vessel:NAME. A vessel refuses one naming only other vessels. */
  targets: z
    .array(z.string().regex(/^(all|group:[a-z0-9][a-z0-9-]{0,62}|vessel:[a-z0-9][a-z0-9-]{0,62})$/))
    .min(1)
    .max(64),
  target: z.strictObject({ app: appNameSchema, service: serviceName }),
  method: methodSchema,
  schedule: cronSchema,
  timeoutSeconds: z.number().int().min(1).max(MAX_TIMEOUT_S),
  /**
   * zstd when the vessel has the zstd tool (faster and smaller than gzip at its default level), gzip
   * otherwise (node:zlib, nothing to install), none for data that is already compressed.
   */
  compression: z.enum(['zstd', 'gzip', 'none']),
  retention: z.strictObject({
    /** Good backups kept on board (the newest is never removed by age). */
    count: z.number().int().min(1).max(10_000),
    /** Good backups older than this go, except the newest. */
    maxAgeSeconds: z
      .number()
      .int()
      .min(3600)
      .max(100 * 365 * 86_400),
  }),
  ashore: z.strictObject({
    ship: z.enum(['none', 'latest', 'all']),
    onlyWhenCheap: z.boolean(),
    bytesPerDay: z
      .number()
      .int()
      .min(0)
      .max(2 ** 50),
  }),
  /** Backups are sealed to this shore key before they leave the vessel; on board they stay readable. */
  encryption: z
    .strictObject({
      to: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 X25519 public key (32 bytes)'),
      keyId: z.string().regex(/^[0-9a-f]{16}$/),
    })
    .nullable(),
  /**
   * A retirement (`tender policy retire`): every vessel holding this policy removes it (its backups on
   * board stay) and from then on refuses any sequence of it at or below this one.
   */
  retired: z.literal(true).optional(),
});
export type PolicyDocument = z.infer<typeof policyDocumentSchema>;

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

const durationText = z
  .union([z.number().int().min(0), z.string().regex(/^\d+(s|m|h|d)$/, 'must be a duration like 90s, 30m, 12h, 30d')])
  .transform((v) => (typeof v === 'number' ? v : Number(v.slice(0, -1)) * DURATION_UNITS[v.slice(-1)]!));
const sizeText = z
  .union([
    z.number().int().min(0),
    z.string().regex(/^\d+(B|KB|MB|GB|KiB|MiB|GiB)$/, 'must be a size like 500MB, 2GiB or a byte count'),
  ])
  .transform((v) => (typeof v === 'number' ? v : Number(/^\d+/.exec(v)![0]) * SIZE_UNITS[v.replace(/^\d+/, '')]!));

/** What ops write. Everything but name, target, method and schedule has a default. */
const policyFileSchema = z.strictObject({
  name: policyNameSchema,
  app: appNameSchema,
  service: serviceName,
  targets: z.array(z.string()).optional(),
  method: z.looseObject({ type: z.string() }),
  schedule: cronSchema,
  timeout: durationText.optional(),
  compression: z.enum(['zstd', 'gzip', 'none']).optional(),
  retention: z.strictObject({ count: z.number().int(), age: durationText }),
  ashore: z
    .strictObject({
      ship: z.enum(['none', 'latest', 'all']).optional(),
      when: z.enum(['cheap', 'any']).optional(),
      budgetPerDay: sizeText.optional(),
    })
    .optional(),
  encryptTo: z.strictObject({ key: z.string(), keyId: z.string() }).optional(),
});

function issueLine(where: string, issue: z.core.$ZodIssue): string {
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : undefined;
  return `${where}: ${describeIssue(issue.path, issue.message, '(top level)', keys)}`;
}

/** Method defaults and a clear word for an unknown method (zod's union error names neither). */
function normaliseMethod(m: { type: string } & Record<string, unknown>, where: string): BackupMethod {
  if (!(METHODS as readonly string[]).includes(m.type))
    throw new PolicyError(
      `${where}: method.type: unknown method ${JSON.stringify(m.type)} (one of ${METHODS.join(', ')})`,
    );
  const defaults: Record<BackupMethodName, Record<string, unknown>> = {
    postgres: { user: 'postgres', checkQuery: 'SELECT count(*) FROM pg_catalog.pg_class' },
    sqlite: {},
    volume: { quiesce: 'stop' },
    exec: { restore: null },
  };
  const r = methodSchema.safeParse({ ...defaults[m.type as BackupMethodName], ...m });
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new PolicyError(issueLine(where, { ...issue, path: ['method', ...issue.path] }));
  }
  return r.data;
}

/** Parse a policy file into the document to sign. Errors name the file and the field. */
export function parsePolicyFile(text: string, file: string, opts: { sequence: number; now?: Date }): PolicyDocument {
  if (Buffer.byteLength(text) > MAX_POLICY_FILE_BYTES)
    throw new PolicyError(`${file}: over the ${MAX_POLICY_FILE_BYTES}-byte limit`);
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true, maxAliasCount: 10, prettyErrors: false });
  } catch (err) {
    throw new PolicyError(`${file}: not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const r = policyFileSchema.safeParse(raw);
  if (!r.success) throw new PolicyError(issueLine(file, r.error.issues[0]!));
  const p = r.data;
  const doc = {
    _type: 'policy' as const,
    spec: POLICY_SPEC,
    name: p.name,
    sequence: opts.sequence,
    createdAt: (opts.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    targets: p.targets ?? ['all'],
    target: { app: p.app, service: p.service },
    method: normaliseMethod(p.method, file),
    schedule: p.schedule.trim(),
    timeoutSeconds: p.timeout ?? DEFAULT_TIMEOUT_S,
    compression: p.compression ?? 'gzip',
    retention: { count: p.retention.count, maxAgeSeconds: p.retention.age },
    ashore: {
      ship: p.ashore?.ship ?? 'none',
      onlyWhenCheap: (p.ashore?.when ?? 'cheap') === 'cheap',
      bytesPerDay: p.ashore?.budgetPerDay ?? DEFAULT_ASHORE_BYTES_PER_DAY,
    },
    encryption: p.encryptTo ? { to: p.encryptTo.key, keyId: p.encryptTo.keyId } : null,
  };
  return checkPolicyDocument(doc, file);
}

/** The strict check of a policy document (signed payload or freshly normalised). */
export function checkPolicyDocument(doc: unknown, where: string): PolicyDocument {
  const m = (doc as { method?: unknown })?.method;
  if (m && typeof m === 'object' && 'type' in m && !(METHODS as readonly unknown[]).includes(m.type))
    throw new PolicyError(
      `${where}: method.type: unknown method ${JSON.stringify(m.type)} (one of ${METHODS.join(', ')})`,
    );
  const r = policyDocumentSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    // Zero is the one retention a policy may not have: say so in words, not as a range.
    const given = (doc as { retention?: Record<string, unknown> })?.retention?.[String(issue.path[1])];
    if (issue.path[0] === 'retention' && issue.code === 'too_small' && given === 0)
      throw new PolicyError(`${where}: retention.${String(issue.path[1])}: zero keeps no backup; refused`);
    throw new PolicyError(issueLine(where, issue));
  }
  return r.data;
}

/**
 * Whether a policy's targets name a vessel: true, false, or undefined when only a group target could
 * name it and its groups are not known (on board with no desired state yet).
 */
export function policyTargets(
  targets: readonly string[],
  v: { name: string; groups?: readonly string[] },
): boolean | undefined {
  let unknown = false;
  for (const t of targets) {
    if (t === 'all' || t === `vessel:${v.name}`) return true;
    if (t.startsWith('group:')) {
      if (!v.groups) unknown = true;
      else if (v.groups.includes(t.slice('group:'.length))) return true;
    }
  }
  return unknown ? undefined : false;
}

/** A signed policy checked as a release is: the root's release keys, strict canonical payload, size cap. */
export function verifyPolicyEnvelope(root: TrustedRoot, bytes: Uint8Array): PolicyDocument {
  const env = readEnvelope(bytes, MAX_POLICY_BYTES);
  const doc = verifySignedDocument(root, env, 'policy');
  return checkPolicyDocument(doc.payload, 'signed policy');
}
