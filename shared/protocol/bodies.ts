import { z } from 'zod';
import { MAX_HUB_TLS_BYTES } from './hub-tls.js';
import {
  appNameSchema,
  appVersionSchema,
  chunkDigestSchema,
  groupNameSchema,
  releaseRefSchema,
  releaseVersionSchema,
  ROLES,
  vesselIdSchema,
  vesselNameSchema,
} from './names.js';
import { CLASS_NAMES } from './telemetry-wire.js';

/**
 * Bodies, path parameters and queries of /api/v1, as zod schemas: the hub validates with them, the
 * OpenAPI document is generated from them, the clients type and check what they receive with them.
 */

/** Manifests up to this size ride in the desired state (most do: the bench's is 2.3 KB). */
export const EMBEDDED_MANIFEST_MAX_BYTES = 16 * 1024;
// Chunks in one pack: a few large responses per release, each resumable at any byte.
export const MAX_PACK_CHUNKS = 100_000;
// Digests in one "which do you lack" question: a multi-gigabyte image set at 16 KB chunks.
export const MAX_DIGESTS_PER_QUERY = 500_000;

const isoTime = z.iso.datetime();
const count = z.number().int().min(0);

export const errorBodySchema = z
  .strictObject({
    error: z.string().describe('a stable code: bad_request, unauthorized, forbidden, not_found, rate_limited, ...'),
    message: z.string().describe('one line for people, naming the field or the thing and the limit'),
  })
  .meta({ id: 'Error' });

// ---- path parameters

export const vesselParams = z.strictObject({ name: vesselNameSchema });
export const vesselReleaseParams = z.strictObject({ name: vesselNameSchema, version: appVersionSchema });
export const packParams = z.strictObject({
  name: vesselNameSchema,
  id: z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 hex digits'),
});
export const rootVersionParams = z.strictObject({ version: z.coerce.number().int().min(1).max(1_000_000_000) });

// ---- health

export const healthSchema = z.strictObject({ status: z.literal('ok') });
export const readySchema = z.strictObject({ status: z.literal('ready') });
export const notReadySchema = z.strictObject({ status: z.literal('unavailable'), reason: z.string() });

// ---- enrolment

export const enrolRequestSchema = z.strictObject({
  token: z.string().max(200).describe('the one-time token tne_<secret>.<root version>.<root pin>'),
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 Ed25519 public key'),
  hostname: z.string().max(253).optional(),
  agentVersion: z.string().max(64).optional(),
});
export type EnrolRequest = z.infer<typeof enrolRequestSchema>;

export const enrolResponseSchema = z.strictObject({
  vesselId: vesselIdSchema,
  name: z.string(),
  groups: z.array(z.string()),
  root: z.string().describe('base64 of the signed root document the token pins'),
});
export type EnrolResponse = z.infer<typeof enrolResponseSchema>;

// ---- vessels

const tokenLifetime = z
  .number()
  .int()
  .min(60)
  .max(365 * 24 * 3600)
  .describe('token lifetime in seconds (default 7 days online, 90 days offline)');

export const addVesselRequestSchema = z.strictObject({
  name: vesselNameSchema,
  groups: z.array(groupNameSchema).max(32).default([]),
  offline: z.boolean().default(false).describe('issue a token for an offline enrolment file (carries the root)'),
  ttlSeconds: tokenLifetime.optional(),
});

export const issueTokenRequestSchema = z
  .strictObject({ offline: z.boolean().default(false), ttlSeconds: tokenLifetime.optional() })
  .prefault({});

export const issuedTokenSchema = z.strictObject({
  vessel: z.string(),
  token: z.string(),
  expiresAt: isoTime,
  root: z.string().optional().describe('base64 of the signed root, for an offline enrolment file'),
  hubCa: z
    .string()
    .max(64 * 1024)
    .optional()
    .describe("PEM of the certificate the token's TLS pin names, for an offline enrolment file"),
});
export type IssuedToken = z.infer<typeof issuedTokenSchema>;

export const listVesselsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(1000),
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
  group: groupNameSchema.optional(),
});

/** Nothing, or an empty object: the route takes no arguments beyond its path. */
export const emptyBodySchema = z.strictObject({}).optional();

/**
 * A service's state as the vessel's engine sees it. `stopped` is kept for reports from agents before v2
 * (they never sent it in practice: their list was empty).
 */
export const SERVICE_STATES = [
  'running',
  'healthy',
  'unhealthy',
  'starting',
  'restarting',
  'exited',
  'missing',
  'stopped',
  'unknown',
] as const;
export type ServiceState = (typeof SERVICE_STATES)[number];
/** States in which a service is doing its job (running without a health check counts). */
export const SERVICE_OK_STATES: readonly ServiceState[] = ['running', 'healthy'];

export const serviceHealthSchema = z.strictObject({
  name: z.string().max(128),
  state: z.enum(SERVICE_STATES),
  detail: z.string().max(512).optional(),
  /** v2: the app and release the service belongs to (the live release of its app). */
  app: z.string().max(64).optional(),
  release: z.string().max(128).optional(),
  /** v2: the exit code of an exited container. */
  exitCode: z.number().int().optional(),
  /** v2: restarts the engine counted for the container. */
  restarts: count.optional(),
});
export type ServiceHealth = z.infer<typeof serviceHealthSchema>;

/** Why a release shore wants is not live yet, as the vessel knows it. */
export const PENDING_STATES = ['queued', 'downloading', 'waiting-for-window', 'held', 'refused', 'failed'] as const;
export type PendingState = (typeof PENDING_STATES)[number];

export const pendingReleaseSchema = z.strictObject({
  version: z.string().max(128),
  state: z.enum(PENDING_STATES),
  reason: z.string().max(512).optional(),
  /** While waiting for the window: when it opens (ISO time, the vessel's corrected clock). */
  until: z.string().max(40).optional(),
  /**
   * While downloading: bytes received of the bytes needed; the link rate (bytes/s) and the seconds left
   * at it, as the vessel measured them when it reported (absent from older agents and when not moving).
   */
  progress: z
    .strictObject({ done: count, total: count, bytesPerSecond: count.optional(), etaSeconds: count.optional() })
    .optional(),
});
export type PendingRelease = z.infer<typeof pendingReleaseSchema>;

/** v2: one app on board or targeted: what is live, what shore wants, and why they differ. */
export const appStatusSchema = z.strictObject({
  app: z.string().max(64),
  live: z.string().max(128).nullable(),
  desired: z.string().max(128).nullable(),
  pending: pendingReleaseSchema.nullable(),
  held: z.boolean(),
});
export type AppStatus = z.infer<typeof appStatusSchema>;

/** v2: the link as the vessel measured it (its own requests to the hub, headers and bodies counted). */
export const linkReportSchema = z.strictObject({
  state: z.enum(['up', 'down', 'refused', 'unknown']),
  lastOkAt: z.string().max(40).nullable(),
  lastError: z.string().max(512).nullable(),
  /** Median round trip of the recent control requests (ms), null before any. */
  rttMs: count.nullable(),
  /** The last 24 hours (hourly buckets), across restarts. */
  bytesUp24h: count,
  bytesDown24h: count,
  requests24h: count,
  failures24h: count,
});
export type LinkReport = z.infer<typeof linkReportSchema>;

export const vesselStatusReportSchema = z.strictObject({
  agentVersion: z.string().max(64),
  current: z.string().max(128).nullable(),
  previous: z.string().max(128).nullable(),
  pending: z.string().max(128).nullable(),
  held: z.boolean(),
  rootVersion: z.number().int().min(1),
  backlog: count,
  services: z.array(serviceHealthSchema).max(256),
  bootId: z.string().max(64),
  reportedAt: z.string().max(40),
  /** v2 (absent from older agents): per app, live vs desired vs pending and why. */
  apps: z.array(appStatusSchema).max(64).optional(),
  /** v2: the crew hold (app null: every app), or null. */
  hold: z
    .strictObject({ app: z.string().max(64).nullable(), sequence: count })
    .nullable()
    .optional(),
  /** v2: the link meter. */
  link: linkReportSchema.optional(),
});
export type VesselStatusReport = z.infer<typeof vesselStatusReportSchema>;

export const vesselViewSchema = z.strictObject({
  name: z.string(),
  groups: z.array(z.string()),
  state: z.enum(['pending', 'enrolled', 'revoked']),
  createdAt: isoTime,
  enrolledAt: isoTime.nullable(),
  revokedAt: isoTime.nullable(),
  lastContact: isoTime.nullable(),
  lastContactAgeSeconds: z.number().int().nullable(),
  currentRelease: z.string().nullable(),
  agentVersion: z.string().nullable(),
  status: vesselStatusReportSchema.nullable().describe("the vessel's last status report"),
  /** When the hub received that report (hub time), and how old it is: the page never shows a fact without it. */
  statusReceivedAt: isoTime.nullable().optional(),
  statusAgeSeconds: z.number().int().nullable().optional(),
});
export type VesselView = z.infer<typeof vesselViewSchema>;

export const vesselListSchema = z.strictObject({ vessels: z.array(vesselViewSchema) });

export const desiredQuerySchema = z.strictObject({
  with: z
    .enum(['manifest'])
    .optional()
    .describe("'manifest': carry the release's signed manifest when it is small (one round trip fewer)"),
});

/**
 * One app this vessel should run (desired state v2: several apps per vessel, a target per (vessel, app)).
 * `digest` is the sha256 (hex) of the signed manifest envelope's bytes: on board a release is known by
 * app, version and digest, never by version alone.
 */
export const desiredAppSchema = z.strictObject({
  app: appNameSchema,
  version: releaseVersionSchema,
  sequence: z.number().int().min(0),
  digest: chunkDigestSchema.describe("sha256 of the signed manifest envelope's bytes"),
  rolloutId: z.number().int().min(0).nullable(),
  /** The signed manifest (base64 of its envelope) when asked for (`?with=manifest`) and small. */
  manifest: z
    .string()
    .max(EMBEDDED_MANIFEST_MAX_BYTES * 2)
    .optional(),
});
export type DesiredApp = z.infer<typeof desiredAppSchema>;

/** Settings the hub sets per vessel or group (the hub's value wins over agent.json where both exist). */
export const vesselSettingsSchema = z.strictObject({
  pollSeconds: z.number().int().min(10).max(86_400).optional(),
  statusHeartbeatSeconds: z
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .optional(),
  hostMetricsSeconds: z.number().int().min(0).max(86_400).optional().describe('0 turns host metrics off'),
  releaseBytesPerSecond: z.number().int().min(0).optional(),
  downloadWindows: z.array(z.string().max(256)).max(16).optional().describe('maintenance-window syntax'),
  downloadOnlyWhenCheap: z.boolean().optional(),
});
export type VesselSettings = z.infer<typeof vesselSettingsSchema>;

export const desiredStateSchema = z.strictObject({
  vessel: z.string(),
  /**
   * Legacy single-app field (desired state v1; agents before v2 read only this): the first of `apps`,
   * without digest. New code reads `apps`.
   */
  release: z
    .strictObject({ app: z.string(), version: z.string(), sequence: z.number().int(), rolloutId: z.number().int() })
    .nullable(),
  /** Latest root version on the hub; a vessel behind it walks the chain. */
  rootVersion: z.number().int(),
  /** Legacy: the first app's embedded manifest (see `apps[].manifest`). */
  manifest: z
    .string()
    .max(EMBEDDED_MANIFEST_MAX_BYTES * 2)
    .optional(),
  /** The groups this vessel belongs to, as the hub knows them (directives and policies may name groups). */
  groups: z.array(groupNameSchema).max(64).optional(),
  /** Every app this vessel should run (v2). Absent from a v1 hub. */
  apps: z.array(desiredAppSchema).max(64).optional(),
  /**
   * Maintenance window for the switch (`shared/protocol/maintenance-window.ts` syntax, e.g.
   * "Mon-Thu 02:00-04:00 UTC"), set on the hub per vessel or group; null: switch any time. Kept on board.
   */
  window: z
    .strictObject({ spec: z.string().max(256), source: z.string().max(80).describe('vessel:NAME or group:NAME') })
    .nullable()
    .optional(),
  /** Signed rollback directives (base64 of each envelope, type `rollback`) that name this vessel. */
  directives: z.array(z.string().max(16_384)).max(16).optional(),
  /** Signed backup policies (base64 of each envelope, type `policy`) for this vessel. */
  policies: z.array(z.string().max(90_000)).max(32).optional(),
  settings: vesselSettingsSchema.optional(),
  /** The signed hub-tls announcement in force (base64 of its envelope): the CAs to pin for the hub. */
  hubTls: z
    .string()
    .max(MAX_HUB_TLS_BYTES * 2)
    .optional(),
});
export type DesiredState = z.infer<typeof desiredStateSchema>;

// ---- roots

export const rootListSchema = z.strictObject({
  roots: z.array(z.strictObject({ version: z.number().int(), expires: z.string(), addedAt: z.number().int() })),
});
export const rootPushedSchema = z.strictObject({ version: z.number().int(), expires: z.string() });

// ---- releases and rollouts

export const storedReleaseSchema = z.strictObject({
  id: z.number().int(),
  app: z.string(),
  version: z.string(),
  sequence: z.number().int(),
  createdAt: z.number().int().describe('unix ms'),
  publishedBy: z.string(),
});
export const publishedReleaseSchema = storedReleaseSchema.extend({
  created: z.boolean().describe('false when this exact manifest was already published'),
});
export const releaseListSchema = z.strictObject({
  releases: z.array(
    storedReleaseSchema.extend({
      hostAccess: z
        .array(z.string())
        .optional()
        .describe('what the release may touch on the host, "SERVICE: /PATH ro|rw"; empty when nothing'),
    }),
  ),
});

export const bundleParams = z.strictObject({ release: releaseRefSchema });
export const bundleQuerySchema = z.strictObject({
  for: vesselNameSchema.optional().describe('leave out what this vessel holds, as its last status report says'),
});

export const nextSequenceQuerySchema = z.strictObject({ app: appNameSchema });
export const nextSequenceSchema = z.strictObject({ app: z.string(), sequence: z.number().int() });

// The rollout API's bodies: rollout-bodies.ts.

// ---- telemetry

export const telemetryStoredSchema = z.strictObject({ stored: count, duplicates: count });

export const logsQuerySchema = z.strictObject({
  service: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)
    .optional(),
  since: isoTime.optional(),
  until: isoTime.optional(),
  grep: z
    .string()
    .max(200)
    // eslint-disable-next-line no-control-regex -- the point: control characters (NUL first) are refused
    .regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters (NUL, newlines)')
    .optional()
    .describe('words that must all appear in the line'),
  limit: z.coerce.number().int().min(1).max(10_000).default(200),
});
export const logsSchema = z.strictObject({
  vessel: z.string(),
  logs: z.array(
    z.strictObject({
      service: z.string(),
      level: z.enum(CLASS_NAMES),
      line: z.string(),
      at: isoTime,
      receivedAt: isoTime,
      seq: z.number().int(),
    }),
  ),
});
export type LogLine = z.infer<typeof logsSchema>['logs'][number];

export const eventsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});
export const eventsSchema = z.strictObject({
  vessel: z.string(),
  events: z.array(
    z.strictObject({ type: z.string(), data: z.unknown(), at: isoTime, receivedAt: isoTime, seq: z.number().int() }),
  ),
  telemetry: z
    .strictObject({
      backlog: count,
      drops: z.record(z.string(), z.strictObject({ records: count, bytes: count })),
      recordsReceived: count,
      bytesReceived: count,
      lastBatchAt: z.number().int().nullable(),
    })
    .nullable()
    .describe("the vessel's telemetry backlog and drop counters as of its last batch"),
});

export const metricsQuerySchema = z.strictObject({
  name: z.string().regex(/^[a-z_][a-z0-9_]{0,100}$/),
  since: isoTime.optional(),
  limit: z.coerce.number().int().min(1).max(100_000).default(1000),
});
export const metricsSchema = z.strictObject({
  vessel: z.string(),
  metric: z.string(),
  points: z.array(z.strictObject({ labels: z.record(z.string(), z.string()), value: z.number(), at: isoTime })),
});

// ---- chunks and packs

export const chunksMissingRequestSchema = z.strictObject({
  digests: z.array(chunkDigestSchema).max(MAX_DIGESTS_PER_QUERY),
});
export const chunksMissingSchema = z.strictObject({ missing: z.array(z.string()) });
export const chunksStoredSchema = z.strictObject({ stored: count, present: count });

export const createPackRequestSchema = z.strictObject({
  release: z.string().max(130).describe('APP@VERSION of a release targeted at this vessel'),
  digests: z
    .array(chunkDigestSchema)
    .min(1)
    .max(MAX_PACK_CHUNKS)
    .describe('the chunks; the hub may carry several in one solid group, or one as a delta'),
  bases: z
    .array(z.tuple([chunkDigestSchema, chunkDigestSchema]))
    .max(256)
    .optional()
    .describe('[wanted layer index, an index of the same app the vessel holds]: send it as a delta'),
});
export const packCreatedSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{32}$/),
  length: z.number().int().min(0),
  etag: z.string(),
});
export type PackCreated = z.infer<typeof packCreatedSchema>;

// ---- ops tokens

export const createTokenRequestSchema = z.strictObject({
  role: z.enum(ROLES),
  name: z.string().min(1).max(64),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(2 * 365 * 24 * 3600)
    .optional()
    .describe('token lifetime in seconds (default 90 days)'),
});
export const tokenCreatedSchema = z.strictObject({
  id: z.string(),
  role: z.enum(ROLES),
  token: z.string(),
  expiresAt: isoTime.optional(),
});
