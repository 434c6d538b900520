import { z } from 'zod';
import { envelopeSchema } from '../trust/envelope.js';
import * as b from './bodies.js';
import * as bk from './backup-ashore.js';
import * as ht from './hub-tls.js';
import * as ob from './ops-bodies.js';
import * as rb from './rollout-bodies.js';
import { HEADER, MEDIA } from './http.js';
import type { Role } from './names.js';
import { telemetryBatchSchema } from './telemetry-wire.js';

/**
 * The route catalogue of the hub API: method, path template, who may call it, and the schemas of its
 * parameters, query, body and answers. The hub registers its fastify routes from it (validation), the
 * OpenAPI document is generated from those routes, and the clients (agent, ops CLI, publisher) build
 * their paths from it, so none of them can drift from the others.
 */

/** Who may call a route: nobody in particular, an ops token of at least a role, or a signed vessel. */
export type RouteAuth =
  { kind: 'public' } | { kind: 'ops'; role: Role } | { kind: 'vessel-or-ops'; role: Role } | { kind: 'vessel' };

/** One answer: its description and a schema per media type. */
export interface ResponseSpec {
  description: string;
  content?: Record<string, { schema: z.ZodType }>;
}

/** A body the route reads as bytes (a codec, not JSON validation, checks it): documented, not validated. */
export interface RawBodySpec {
  mediaType: string;
  description: string;
  /** What the bytes hold, for the document, when it is JSON (an envelope, a telemetry batch). */
  schema?: z.ZodType;
}

export interface RouteDef {
  method: 'GET' | 'POST' | 'PUT';
  /** The path template as fastify spells it (`:name`). */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  auth: RouteAuth;
  params?: z.ZodType;
  querystring?: z.ZodType;
  body?: z.ZodType;
  rawBody?: RawBodySpec;
  response: Record<number, ResponseSpec>;
}

const API = '/api/v1';
const VESSELS = `${API}/vessels`;
const VESSEL = `${VESSELS}/:name`;

const ERROR_TEXT: Record<number, string> = {
  400: 'malformed request (the message names the field)',
  401: 'missing, invalid or expired credentials',
  403: 'credential lacks the role, or a vessel called an ops route',
  404: "not found (also: another vessel's resource)",
  409: 'conflict (the message says with what)',
  413: "body over the route's limit",
  415: 'unsupported media type or content encoding',
  416: 'range not satisfiable',
  429: 'rate limited; see Retry-After',
  503: 'not ready',
};

const json = <S extends z.ZodType>(schema: S, description = 'OK') => ({
  description,
  content: { [MEDIA.json]: { schema } } as { [MEDIA.json]: { schema: S } },
});
const bytes = (mediaType: string, description: string, schema?: z.ZodType): ResponseSpec => ({
  description,
  content: {
    [mediaType]: {
      schema: schema ?? z.custom<Buffer>().meta({ type: 'string', format: 'binary', description }),
    },
  },
});
const none = (description: string): ResponseSpec => ({ description });
const errors = (...codes: number[]): Record<number, ResponseSpec> =>
  Object.fromEntries(codes.map((c) => [c, json(b.errorBodySchema, ERROR_TEXT[c] ?? 'error')]));

const viewer = { kind: 'vessel-or-ops', role: 'viewer' } as const;
const ops = (role: Role) => ({ kind: 'ops', role }) as const;
const vessel = { kind: 'vessel' } as const;
const open = { kind: 'public' } as const;

const route = <const R extends RouteDef>(r: R): R => r;

export const ROUTES = {
  health: route({
    method: 'GET',
    url: '/health',
    operationId: 'health',
    summary: 'the process is alive',
    tags: ['health'],
    auth: open,
    response: { 200: json(b.healthSchema) },
  }),
  ready: route({
    method: 'GET',
    url: '/ready',
    operationId: 'ready',
    summary: 'able to serve: the database answers and a root document is loaded',
    tags: ['health'],
    auth: open,
    response: { 200: json(b.readySchema), 503: json(b.notReadySchema, 'not ready, and why') },
  }),
  metrics: route({
    method: 'GET',
    url: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics of the hub (text exposition format)',
    tags: ['health'],
    auth: open,
    response: { 200: bytes(MEDIA.prometheus, 'Prometheus text format', z.string()) },
  }),
  openapi: route({
    method: 'GET',
    url: `${API}/openapi.json`,
    operationId: 'openapi',
    summary: 'this document (not a secret: every route it describes still needs its credentials)',
    tags: ['docs'],
    auth: open,
    response: { 200: json(z.record(z.string(), z.unknown()), 'the OpenAPI 3.1 document') },
  }),
  docs: route({
    method: 'GET',
    url: `${API}/docs`,
    operationId: 'docs',
    summary: 'this document as a page to read',
    tags: ['docs'],
    auth: open,
    response: { 200: bytes(MEDIA.html, 'the API reference', z.string()) },
  }),

  enrol: route({
    method: 'POST',
    url: `${API}/enroll`,
    operationId: 'enrol',
    summary: "enrol a vessel with a one-time token: registers the vessel's public key, answers the pinned root",
    tags: ['enrolment'],
    auth: open,
    body: b.enrolRequestSchema,
    response: { 200: json(b.enrolResponseSchema), ...errors(400, 401, 409, 429) },
  }),

  listVessels: route({
    method: 'GET',
    url: VESSELS,
    operationId: 'listVessels',
    summary: 'list vessels',
    tags: ['vessels'],
    auth: ops('viewer'),
    querystring: b.listVesselsQuerySchema,
    response: { 200: json(b.vesselListSchema), ...errors(400, 401, 403) },
  }),
  addVessel: route({
    method: 'POST',
    url: VESSELS,
    operationId: 'addVessel',
    summary: 'add a vessel; answers a one-time enrolment token',
    tags: ['vessels'],
    auth: ops('operator'),
    body: b.addVesselRequestSchema,
    response: { 201: json(b.issuedTokenSchema, 'the vessel and its enrolment token'), ...errors(400, 401, 403, 409) },
  }),
  getVessel: route({
    method: 'GET',
    url: VESSEL,
    operationId: 'getVessel',
    summary: 'one vessel',
    tags: ['vessels'],
    auth: viewer,
    params: b.vesselParams,
    response: { 200: json(b.vesselViewSchema), ...errors(400, 401, 404) },
  }),
  issueToken: route({
    method: 'POST',
    url: `${VESSEL}/tokens`,
    operationId: 'issueToken',
    summary: 'a new enrolment token for a vessel',
    tags: ['vessels'],
    auth: ops('operator'),
    params: b.vesselParams,
    body: b.issueTokenRequestSchema,
    response: { 201: json(b.issuedTokenSchema, 'the enrolment token'), ...errors(400, 401, 403, 404) },
  }),
  revokeVessel: route({
    method: 'POST',
    url: `${VESSEL}/revoke`,
    operationId: 'revokeVessel',
    summary: "revoke a vessel's credential: every later request from it is refused",
    tags: ['vessels'],
    auth: ops('admin'),
    params: b.vesselParams,
    body: b.emptyBodySchema,
    response: { 200: json(b.vesselViewSchema, 'the vessel, revoked'), ...errors(400, 401, 403, 404) },
  }),
  getDesired: route({
    method: 'GET',
    url: `${VESSEL}/desired`,
    operationId: 'getDesired',
    summary: 'the desired state; send If-None-Match with the last ETag to get 304 when nothing changed',
    tags: ['vessels'],
    auth: viewer,
    params: b.vesselParams,
    querystring: b.desiredQuerySchema,
    response: {
      200: json(b.desiredStateSchema, 'the desired state (ETag: its digest)'),
      304: none('not modified'),
      ...errors(400, 401, 404),
    },
  }),
  postStatus: route({
    method: 'POST',
    url: `${VESSEL}/status`,
    operationId: 'postStatus',
    summary: 'a vessel reports its state',
    tags: ['vessels'],
    auth: vessel,
    params: b.vesselParams,
    body: b.vesselStatusReportSchema,
    response: { 204: none('stored'), ...errors(400, 401, 403, 404) },
  }),

  listRoots: route({
    method: 'GET',
    url: `${API}/roots`,
    operationId: 'listRoots',
    summary: 'root versions the hub serves',
    tags: ['roots'],
    auth: viewer,
    response: { 200: json(b.rootListSchema), ...errors(401) },
  }),
  pushRoot: route({
    method: 'PUT',
    url: `${API}/roots`,
    operationId: 'pushRoot',
    summary: 'push the next root document (verified against the current one)',
    tags: ['roots'],
    auth: ops('admin'),
    rawBody: {
      mediaType: MEDIA.envelope,
      description: 'the signed root document, exact bytes (strict JSON: no duplicate keys, no floats)',
      schema: envelopeSchema,
    },
    response: { 200: json(b.rootPushedSchema), ...errors(400, 401, 403, 409, 413, 415) },
  }),
  getRoot: route({
    method: 'GET',
    url: `${API}/roots/:version`,
    operationId: 'getRoot',
    summary: 'a signed root document (immutable: cacheable forever)',
    tags: ['roots'],
    auth: viewer,
    params: b.rootVersionParams,
    response: { 200: bytes(MEDIA.envelope, 'the signed root document', envelopeSchema), ...errors(400, 401, 404) },
  }),

  publishRelease: route({
    method: 'PUT',
    url: `${API}/releases`,
    operationId: 'publishRelease',
    summary: 'publish a signed release manifest (verified against the root; its sequence must increase)',
    tags: ['releases'],
    auth: ops('operator'),
    rawBody: {
      mediaType: MEDIA.envelope,
      description: 'the signed release manifest, exact bytes (an envelope over the canonical manifest)',
      schema: envelopeSchema,
    },
    response: {
      200: json(b.publishedReleaseSchema, 'already published, identical'),
      201: json(b.publishedReleaseSchema, 'published'),
      ...errors(400, 401, 403, 409, 413, 415),
    },
  }),
  listReleases: route({
    method: 'GET',
    url: `${API}/releases`,
    operationId: 'listReleases',
    summary: 'published releases',
    tags: ['releases'],
    auth: ops('viewer'),
    response: { 200: json(b.releaseListSchema), ...errors(401, 403) },
  }),
  nextSequence: route({
    method: 'GET',
    url: `${API}/releases/next-sequence`,
    operationId: 'nextSequence',
    summary: 'the next free sequence number for an app',
    tags: ['releases'],
    auth: ops('operator'),
    querystring: b.nextSequenceQuerySchema,
    response: { 200: json(b.nextSequenceSchema), ...errors(400, 401, 403) },
  }),
  getManifest: route({
    method: 'GET',
    url: `${VESSEL}/releases/:version`,
    operationId: 'getManifest',
    summary: 'the signed manifest of a release targeted at this vessel ({version} is APP@VERSION)',
    description: 'Manifests can be megabytes: a cut download resumes with Range: bytes=N- and If-Range: <ETag>.',
    tags: ['releases'],
    auth: viewer,
    params: b.vesselReleaseParams,
    response: {
      200: bytes(MEDIA.envelope, 'the signed manifest', envelopeSchema),
      206: bytes(MEDIA.envelope, 'the rest of it, from the asked byte'),
      ...errors(400, 401, 404, 416),
    },
  }),

  exportBundle: route({
    method: 'GET',
    url: `${API}/releases/:release/bundle`,
    operationId: 'exportBundle',
    summary: 'a release bundle for a USB stick: the signed manifest and its chunks, streamed',
    description:
      'With ?for=NAME, the chunks of the releases that vessel last reported (current, previous) are left out.',
    tags: ['releases'],
    auth: ops('operator'),
    params: b.bundleParams,
    querystring: b.bundleQuerySchema,
    response: {
      200: bytes(MEDIA.bundle, 'the bundle (shared/protocol/bundle.ts)'),
      ...errors(400, 401, 403, 404, 409),
    },
  }),

  startRollout: route({
    method: 'POST',
    url: `${API}/rollouts`,
    operationId: 'startRollout',
    summary: 'start a rollout of a release in waves (canary first) to all vessels, a group or one vessel',
    description:
      'Waves are cumulative percentages ending at 100; a wave passes at the threshold (minSuccessPercent or ' +
      'maxFailuresPercent) once its quorum finished, else the rollout halts by itself. With `rollback`, the ' +
      'signed directive (made on the publisher machine) rides to the vessels it names.',
    tags: ['rollouts'],
    auth: ops('operator'),
    body: rb.rolloutStartRequestSchema,
    response: { 201: json(rb.rolloutStartedSchema, 'started'), ...errors(400, 401, 403, 404, 409) },
  }),
  listRollouts: route({
    method: 'GET',
    url: `${API}/rollouts`,
    operationId: 'listRollouts',
    summary: 'rollouts, newest first',
    tags: ['rollouts'],
    auth: ops('viewer'),
    response: { 200: json(rb.rolloutListSchema), ...errors(401, 403) },
  }),
  getRollout: route({
    method: 'GET',
    url: `${API}/rollouts/:id`,
    operationId: 'getRollout',
    summary: "a rollout per wave and per vessel, with each vessel's outcome and its reason",
    tags: ['rollouts'],
    auth: ops('viewer'),
    params: rb.rolloutIdParams,
    response: { 200: json(rb.rolloutShowSchema), ...errors(400, 401, 403, 404) },
  }),
  pauseRollout: route({
    method: 'POST',
    url: `${API}/rollouts/:id/pause`,
    operationId: 'pauseRollout',
    summary: 'pause an active rollout: no further wave starts (vessels already targeted keep their target)',
    tags: ['rollouts'],
    auth: ops('operator'),
    params: rb.rolloutIdParams,
    body: b.emptyBodySchema,
    response: { 200: json(rb.rolloutViewSchema), ...errors(400, 401, 403, 404, 409) },
  }),
  resumeRollout: route({
    method: 'POST',
    url: `${API}/rollouts/:id/resume`,
    operationId: 'resumeRollout',
    summary: 'resume a paused rollout',
    tags: ['rollouts'],
    auth: ops('operator'),
    params: rb.rolloutIdParams,
    body: b.emptyBodySchema,
    response: { 200: json(rb.rolloutViewSchema), ...errors(400, 401, 403, 404, 409) },
  }),
  abortRollout: route({
    method: 'POST',
    url: `${API}/rollouts/:id/abort`,
    operationId: 'abortRollout',
    summary: 'abort a rollout: no further wave starts; vessels not yet started keep their release',
    tags: ['rollouts'],
    auth: ops('operator'),
    params: rb.rolloutIdParams,
    body: b.emptyBodySchema,
    response: { 200: json(rb.rolloutViewSchema), ...errors(400, 401, 403, 404, 409) },
  }),
  rollbackDraft: route({
    method: 'GET',
    url: `${API}/rollbacks/draft`,
    operationId: 'rollbackDraft',
    summary: 'what a rollback directive for a release must name: its manifest digest and the next counter',
    description: 'The publisher signs the directive on its own machine; the hub cannot make one.',
    tags: ['rollouts'],
    auth: ops('operator'),
    querystring: rb.rollbackDraftQuerySchema,
    response: { 200: json(rb.rollbackDraftSchema), ...errors(400, 401, 403, 404) },
  }),
  listWindows: route({
    method: 'GET',
    url: `${API}/windows`,
    operationId: 'listWindows',
    summary: 'maintenance windows per vessel or group',
    tags: ['rollouts'],
    auth: ops('viewer'),
    response: { 200: json(rb.windowListSchema), ...errors(401, 403) },
  }),
  setWindow: route({
    method: 'PUT',
    url: `${API}/windows`,
    operationId: 'setWindow',
    summary: "set a vessel's or group's maintenance window (when the switch may happen)",
    tags: ['rollouts'],
    auth: ops('operator'),
    body: rb.windowSetRequestSchema,
    response: { 200: json(rb.windowSetRequestSchema, 'set'), ...errors(400, 401, 403, 404) },
  }),
  clearWindow: route({
    method: 'POST',
    url: `${API}/windows/clear`,
    operationId: 'clearWindow',
    summary: "clear a vessel's or group's maintenance window",
    tags: ['rollouts'],
    auth: ops('operator'),
    body: rb.scopeRequestSchema,
    response: { 200: json(rb.clearedSchema), ...errors(400, 401, 403) },
  }),
  listSettings: route({
    method: 'GET',
    url: `${API}/settings`,
    operationId: 'listSettings',
    summary: 'download settings the hub sets per vessel or group',
    tags: ['rollouts'],
    auth: ops('viewer'),
    response: { 200: json(rb.settingsListSchema), ...errors(401, 403) },
  }),
  setSettings: route({
    method: 'PUT',
    url: `${API}/settings`,
    operationId: 'setSettings',
    summary: "set a vessel's or group's download settings (they win over agent.json's on board)",
    tags: ['rollouts'],
    auth: ops('operator'),
    body: rb.settingsSetRequestSchema,
    response: { 200: json(rb.settingsSetRequestSchema, 'set'), ...errors(400, 401, 403, 404) },
  }),
  clearSettings: route({
    method: 'POST',
    url: `${API}/settings/clear`,
    operationId: 'clearSettings',
    summary: "clear a vessel's or group's download settings",
    tags: ['rollouts'],
    auth: ops('operator'),
    body: rb.scopeRequestSchema,
    response: { 200: json(rb.clearedSchema), ...errors(400, 401, 403) },
  }),

  postTelemetry: route({
    method: 'POST',
    url: `${VESSEL}/telemetry`,
    operationId: 'postTelemetry',
    summary: 'a telemetry batch; records are stored once by (vessel, epoch, seq), however often it is retried',
    tags: ['telemetry'],
    auth: vessel,
    params: b.vesselParams,
    rawBody: {
      mediaType: MEDIA.telemetry,
      description:
        'a columnar JSON batch (sequence numbers and times as deltas, sources as a dictionary), compressed: ' +
        'Content-Encoding gzip or br; inflated size capped',
      schema: telemetryBatchSchema,
    },
    response: { 200: json(b.telemetryStoredSchema), ...errors(400, 401, 403, 404, 413, 415, 429) },
  }),
  getLogs: route({
    method: 'GET',
    url: `${VESSEL}/logs`,
    operationId: 'getLogs',
    summary: 'log lines shipped ashore, oldest first',
    tags: ['telemetry'],
    auth: viewer,
    params: b.vesselParams,
    querystring: b.logsQuerySchema,
    response: { 200: json(b.logsSchema), ...errors(400, 401, 404) },
  }),
  getEvents: route({
    method: 'GET',
    url: `${VESSEL}/events`,
    operationId: 'getEvents',
    summary: 'events shipped ashore, newest first, with the telemetry backlog and drop counts',
    tags: ['telemetry'],
    auth: viewer,
    params: b.vesselParams,
    querystring: b.eventsQuerySchema,
    response: { 200: json(b.eventsSchema), ...errors(400, 401, 404) },
  }),
  getMetrics: route({
    method: 'GET',
    url: `${VESSEL}/metrics`,
    operationId: 'getMetrics',
    summary: 'one metric of a vessel as a time series',
    tags: ['telemetry'],
    auth: viewer,
    params: b.vesselParams,
    querystring: b.metricsQuerySchema,
    response: { 200: json(b.metricsSchema), ...errors(400, 401, 404) },
  }),

  chunksMissing: route({
    method: 'POST',
    url: `${API}/chunks/missing`,
    operationId: 'chunksMissing',
    summary: 'which of these chunk digests the hub lacks (one request per publish)',
    tags: ['chunks'],
    auth: ops('operator'),
    body: b.chunksMissingRequestSchema,
    response: { 200: json(b.chunksMissingSchema), ...errors(400, 401, 403, 413) },
  }),
  uploadChunks: route({
    method: 'POST',
    url: `${API}/chunks`,
    operationId: 'uploadChunks',
    summary: 'upload chunks; each is verified against its digest and declared size before it is stored',
    tags: ['chunks'],
    auth: ops('operator'),
    rawBody: {
      mediaType: MEDIA.uploadPack,
      description:
        'an upload pack: entries of [32-byte sha256 of the raw chunk][4-byte raw size][4-byte compressed size]' +
        '[brotli bytes], sizes big-endian',
    },
    response: { 200: json(b.chunksStoredSchema), ...errors(400, 401, 403, 413, 415) },
  }),
  createPack: route({
    method: 'POST',
    url: `${VESSEL}/packs`,
    operationId: 'createPack',
    summary: 'fix a list of missing chunks of a release targeted at this vessel as a pack',
    description:
      `Answers the pack's id and length, or, asked with Accept: ${MEDIA.pack}, the pack itself ` +
      `(its id in ${HEADER.packId}, its length in ${HEADER.packLength}), saving a round trip. Sent with ` +
      `${HEADER.packAhead}: groups on a request for configs and layer indexes only, the pack carries after ` +
      `them the solid groups of content the vessel lacks (judged from the layer indexes it holds: those of ` +
      `the release it does not ask for, and the bases it names), saving the content request's round trip.`,
    tags: ['packs'],
    auth: vessel,
    params: b.vesselParams,
    body: b.createPackRequestSchema,
    response: {
      201: {
        description: 'the pack id and length, or the pack bytes',
        content: {
          [MEDIA.json]: { schema: b.packCreatedSchema },
          [MEDIA.pack]: { schema: packBytesSchema() },
        },
      },
      ...errors(400, 401, 403, 404, 409),
    },
  }),
  getPack: route({
    method: 'GET',
    url: `${VESSEL}/packs/:id`,
    operationId: 'getPack',
    summary: 'a pack; Range and If-Range supported, its bytes stable across restarts of the hub',
    tags: ['packs'],
    auth: viewer,
    params: b.packParams,
    response: {
      200: { description: 'the pack', content: { [MEDIA.pack]: { schema: packBytesSchema() } } },
      206: { description: 'a range of it', content: { [MEDIA.pack]: { schema: packBytesSchema() } } },
      ...errors(400, 401, 404, 416),
    },
  }),

  publishPolicy: route({
    method: 'PUT',
    url: `${API}/policies`,
    operationId: 'publishPolicy',
    summary: 'publish a signed backup policy (verified against the root; per name its sequence must increase)',
    description:
      'The hub stores the envelope as it came and delivers it in the desired state of every vessel its ' +
      'signed targets name (and of those an older sequence named, so they learn it no longer names them).',
    tags: ['backups'],
    auth: ops('operator'),
    rawBody: { mediaType: MEDIA.envelope, description: 'the signed policy, exact bytes', schema: envelopeSchema },
    response: {
      200: json(bk.policyPublishedSchema, 'already published, identical'),
      201: json(bk.policyPublishedSchema, 'published'),
      ...errors(400, 401, 403, 409, 413, 415),
    },
  }),
  publishHubTls: route({
    method: 'PUT',
    url: `${API}/hub-tls`,
    operationId: 'publishHubTls',
    summary: 'announce the CAs vessels pin for the hub (signed with a release key; the sequence must increase)',
    description:
      "The hub verifies the envelope against its root and delivers it in every vessel's desired state; a vessel " +
      'replaces the CAs it pins with those listed. Refused (409) when it leaves out the CA this hub serves ' +
      'under now: vessels would refuse the hub on their next connection.',
    tags: ['tls'],
    auth: ops('operator'),
    rawBody: { mediaType: MEDIA.envelope, description: 'the signed announcement, exact bytes', schema: envelopeSchema },
    response: {
      200: json(ht.hubTlsPublishedSchema, 'already published, identical'),
      201: json(ht.hubTlsPublishedSchema, 'published'),
      ...errors(400, 401, 403, 409, 413, 415),
    },
  }),
  getHubTls: route({
    method: 'GET',
    url: `${API}/hub-tls`,
    operationId: 'getHubTls',
    summary: 'the CAs announced to vessels, and the CA this hub process serves under',
    tags: ['tls'],
    auth: ops('viewer'),
    response: { 200: json(ht.hubTlsViewSchema), ...errors(401, 403) },
  }),
  listPolicies: route({
    method: 'GET',
    url: `${API}/policies`,
    operationId: 'listPolicies',
    summary: 'backup policies in force (the newest sequence of each)',
    tags: ['backups'],
    auth: ops('viewer'),
    response: { 200: json(bk.policyListSchema), ...errors(401, 403) },
  }),
  backupChunksMissing: route({
    method: 'POST',
    url: `${VESSEL}/backups/missing`,
    operationId: 'backupChunksMissing',
    summary: "which of a backup's chunk ids the hub lacks (one request per backup, before uploading)",
    tags: ['backups'],
    auth: vessel,
    params: b.vesselParams,
    body: bk.backupChunksQuerySchema,
    response: { 200: json(bk.backupChunksMissingSchema), ...errors(400, 401, 403, 404, 413) },
  }),
  uploadBackupChunks: route({
    method: 'POST',
    url: `${VESSEL}/backups/chunks`,
    operationId: 'uploadBackupChunks',
    summary: 'upload backup chunks (an upload pack); each is checked against its id before it is stored',
    tags: ['backups'],
    auth: vessel,
    params: b.vesselParams,
    rawBody: {
      mediaType: MEDIA.uploadPack,
      description:
        'an upload pack of backup chunks in their stored form (shared/content/backup-chunks.ts): entries of ' +
        '[32-byte sha256 of the stored form][4-byte size][4-byte compressed size][brotli bytes]',
    },
    response: { 200: json(b.chunksStoredSchema), ...errors(400, 401, 403, 404, 413, 415) },
  }),
  putBackup: route({
    method: 'PUT',
    url: `${VESSEL}/backups/:id`,
    operationId: 'putBackup',
    summary: 'record a backup ashore: its chunk list and checksums, once the hub holds every chunk',
    tags: ['backups'],
    auth: vessel,
    params: bk.backupParams,
    body: bk.backupRecordBodySchema,
    response: {
      200: json(bk.backupStoredSchema, 'already recorded, identical'),
      201: json(bk.backupStoredSchema, 'recorded'),
      ...errors(400, 401, 403, 404, 409, 413),
    },
  }),
  listBackups: route({
    method: 'GET',
    url: `${VESSEL}/backups`,
    operationId: 'listBackups',
    summary: "a vessel's backups ashore, newest first",
    tags: ['backups'],
    auth: viewer,
    params: b.vesselParams,
    querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
    response: { 200: json(bk.backupListSchema), ...errors(400, 401, 403, 404) },
  }),
  getBackupContent: route({
    method: 'GET',
    url: `${VESSEL}/backups/:id/content`,
    operationId: 'getBackupContent',
    summary: 'download a backup: the dump joined from its chunks, or for a sealed one the sealed file',
    description: 'A sealed backup opens only with the shore seal key: `tender backup open FILE --key seal.key`.',
    tags: ['backups'],
    auth: ops('operator'),
    params: bk.backupParams,
    response: { 200: bytes(MEDIA.backup, 'the backup'), ...errors(401, 403, 404) },
  }),

  createOpsToken: route({
    method: 'POST',
    url: `${API}/tokens`,
    operationId: 'createOpsToken',
    summary: 'create an ops token',
    tags: ['tokens'],
    auth: ops('admin'),
    body: b.createTokenRequestSchema,
    response: { 201: json(b.tokenCreatedSchema, 'the token; shown once'), ...errors(400, 401, 403) },
  }),
  listOpsTokens: route({
    method: 'GET',
    url: `${API}/tokens`,
    operationId: 'listOpsTokens',
    summary: 'every ops token: id, role, name, state, expiry (never the secret)',
    tags: ['tokens'],
    auth: ops('admin'),
    response: { 200: json(ob.opsTokenListSchema, 'the tokens, oldest first'), ...errors(401, 403) },
  }),
  revokeOpsToken: route({
    method: 'POST',
    url: `${API}/tokens/:id/revoke`,
    operationId: 'revokeOpsToken',
    summary: 'revoke an ops token: every later request with it is refused',
    tags: ['tokens'],
    auth: ops('admin'),
    params: ob.opsTokenParams,
    body: b.emptyBodySchema,
    response: { 200: json(ob.opsTokenViewSchema, 'the token, revoked'), ...errors(400, 401, 403, 404) },
  }),
  listAudit: route({
    method: 'GET',
    url: `${API}/audit`,
    operationId: 'listAudit',
    summary: 'the audit log of ops actions, oldest first, a page at a time',
    tags: ['tokens'],
    auth: ops('admin'),
    querystring: ob.auditQuerySchema,
    response: { 200: json(ob.auditPageSchema, 'a page of audit records'), ...errors(400, 401, 403) },
  }),
  rekeyVessel: route({
    method: 'POST',
    url: `${VESSEL}/rekey`,
    operationId: 'rekeyVessel',
    summary: "an admin's re-key of an enrolled vessel: a token that may replace its key, cancelling every other token",
    tags: ['vessels'],
    auth: ops('admin'),
    params: b.vesselParams,
    body: ob.rekeyRequestSchema,
    response: { 201: json(ob.rekeyIssuedSchema, 'the re-key token'), ...errors(400, 401, 403, 404, 409) },
  }),
} as const satisfies Record<string, RouteDef>;

export type RouteName = keyof typeof ROUTES;

function packBytesSchema(): z.ZodType {
  return z.custom<Buffer>().meta({
    type: 'string',
    format: 'binary',
    description:
      'a download pack: entries of [32-byte sha256 of the raw chunk][4-byte compressed size, big-endian]' +
      '[brotli bytes], in the order asked',
  });
}

/** A route's path with its parameters filled in (each one URI-encoded) and its query appended. */
export function pathOf(
  r: Pick<RouteDef, 'url'>,
  params: Record<string, string | number> = {},
  query: Record<string, string | number | undefined> = {},
): string {
  const path = r.url.replace(/:(\w+)/g, (_, k: string) => {
    const v = params[k];
    if (v === undefined) throw new Error(`${r.url}: no value for :${k}`);
    return encodeURIComponent(String(v));
  });
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

/** The paths clients call, one function per route that needs arguments. */
export const paths = {
  enrol: () => pathOf(ROUTES.enrol),
  vessels: (q: { group?: string; limit?: number; offset?: number } = {}) => pathOf(ROUTES.listVessels, {}, q),
  vessel: (name: string) => pathOf(ROUTES.getVessel, { name }),
  vesselTokens: (name: string) => pathOf(ROUTES.issueToken, { name }),
  vesselRevoke: (name: string) => pathOf(ROUTES.revokeVessel, { name }),
  vesselDesired: (name: string, q: { with?: 'manifest' } = {}) => pathOf(ROUTES.getDesired, { name }, q),
  vesselStatus: (name: string) => pathOf(ROUTES.postStatus, { name }),
  vesselManifest: (name: string, app: string, version: string) =>
    pathOf(ROUTES.getManifest, { name, version: `${app}@${version}` }),
  vesselTelemetry: (name: string) => pathOf(ROUTES.postTelemetry, { name }),
  vesselLogs: (
    name: string,
    q: { service?: string; since?: string; until?: string; grep?: string; limit?: number } = {},
  ) => pathOf(ROUTES.getLogs, { name }, q),
  vesselEvents: (name: string, q: { limit?: number } = {}) => pathOf(ROUTES.getEvents, { name }, q),
  vesselMetrics: (name: string, q: { name: string; since?: string; limit?: number }) =>
    pathOf(ROUTES.getMetrics, { name }, q),
  vesselPacks: (name: string) => pathOf(ROUTES.createPack, { name }),
  vesselPack: (name: string, id: string) => pathOf(ROUTES.getPack, { name, id }),
  roots: () => pathOf(ROUTES.listRoots),
  root: (version: number) => pathOf(ROUTES.getRoot, { version }),
  releases: () => pathOf(ROUTES.listReleases),
  nextSequence: (app: string) => pathOf(ROUTES.nextSequence, {}, { app }),
  rollouts: () => pathOf(ROUTES.listRollouts),
  rollout: (id: number) => pathOf(ROUTES.getRollout, { id }),
  rolloutAction: (id: number, verb: 'pause' | 'resume' | 'abort') =>
    pathOf(verb === 'pause' ? ROUTES.pauseRollout : verb === 'resume' ? ROUTES.resumeRollout : ROUTES.abortRollout, {
      id,
    }),
  rollbackDraft: (release: string) => pathOf(ROUTES.rollbackDraft, {}, { release }),
  windows: () => pathOf(ROUTES.listWindows),
  windowClear: () => pathOf(ROUTES.clearWindow),
  settings: () => pathOf(ROUTES.listSettings),
  settingsClear: () => pathOf(ROUTES.clearSettings),
  bundle: (release: string, q: { for?: string } = {}) => pathOf(ROUTES.exportBundle, { release }, q),
  chunksMissing: () => pathOf(ROUTES.chunksMissing),
  chunks: () => pathOf(ROUTES.uploadChunks),
  opsTokens: () => pathOf(ROUTES.createOpsToken),
  opsTokenRevoke: (id: string) => pathOf(ROUTES.revokeOpsToken, { id }),
  audit: (q: { after?: number; since?: string; limit?: number } = {}) => pathOf(ROUTES.listAudit, {}, q),
  vesselRekey: (name: string) => pathOf(ROUTES.rekeyVessel, { name }),
  policies: () => pathOf(ROUTES.listPolicies),
  hubTls: () => pathOf(ROUTES.getHubTls),
  backupChunksMissing: (name: string) => pathOf(ROUTES.backupChunksMissing, { name }),
  backupChunks: (name: string) => pathOf(ROUTES.uploadBackupChunks, { name }),
  backup: (name: string, id: string) => pathOf(ROUTES.putBackup, { name, id }),
  backups: (name: string, q: { limit?: number } = {}) => pathOf(ROUTES.listBackups, { name }, q),
  backupContent: (name: string, id: string) => pathOf(ROUTES.getBackupContent, { name, id }),
  openapi: () => pathOf(ROUTES.openapi),
  docs: () => pathOf(ROUTES.docs),
};
