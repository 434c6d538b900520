import { z } from 'zod';
import { desiredStateSchema, enrolResponseSchema, vesselStatusReportSchema } from '../shared/protocol/bodies.js';
import { enrolRequestSchema } from './routes/enrol.js';
import { telemetryBatchSchema } from '../shared/protocol/telemetry-wire.js';

/**
 * The OpenAPI document served at /api/v1/openapi.json. Body schemas are generated from the same zod
 * schemas the routes validate with, so the document cannot drift from the code. It is built in code
 * (not read from a file) so the single executable carries it.
 */
const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const error = { $ref: '#/components/schemas/Error' };
const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      { description: ERROR_TEXT[c] ?? 'error', content: { 'application/json': { schema: error } } },
    ]),
  );
const ERROR_TEXT: Record<number, string> = {
  400: 'malformed request (the message names the field)',
  401: 'missing, invalid or expired credentials',
  403: 'credential lacks the role, or a vessel called an ops route',
  404: "not found (also: another vessel's resource)",
  409: 'conflict',
  413: "body over the route's limit",
  429: 'rate limited; see Retry-After',
};
const json = (s: unknown, description = 'OK') => ({ description, content: { 'application/json': { schema: s } } });
const ops = (role: string) => ({ security: [{ bearer: [] }], 'x-tender-role': role });
const vesselOrOps = {
  security: [{ bearer: [] }, { vessel: [] }],
  'x-tender-role': 'viewer (ops) or the vessel itself',
};

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: { title: 'Tender hub API', version: '1' },
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'ops token (tnd_...), roles viewer < operator < admin' },
      vessel: {
        type: 'apiKey',
        in: 'header',
        name: 'Authorization',
        description: 'Tender-Vessel id=<vessel id>, ts=<unix ms>, sig=<Ed25519 over method, path, ts, body sha256>',
      },
    },
    schemas: {
      Error: {
        type: 'object',
        properties: { error: { type: 'string' }, message: { type: 'string' } },
        required: ['error', 'message'],
      },
    },
  },
  paths: {
    '/health': { get: { summary: 'process is alive', security: [], responses: { 200: json({ type: 'object' }) } } },
    '/ready': {
      get: {
        summary: 'able to serve (database open, root configured)',
        security: [],
        responses: { 200: json({ type: 'object' }), 503: json({ type: 'object' }, 'not ready') },
      },
    },
    '/metrics': {
      get: { summary: 'Prometheus text format', security: [], responses: { 200: { description: 'metrics' } } },
    },
    '/api/v1/enroll': {
      post: {
        summary: 'enrol a vessel with a one-time token',
        security: [],
        requestBody: { content: { 'application/json': { schema: schema(enrolRequestSchema) } } },
        responses: { 200: json(schema(enrolResponseSchema)), ...errors(400, 401, 409, 429) },
      },
    },
    '/api/v1/vessels': {
      get: {
        summary: 'list vessels',
        ...ops('viewer'),
        responses: { 200: json({ type: 'object' }), ...errors(401, 403) },
      },
      post: {
        summary: 'add a vessel; returns a one-time enrolment token',
        ...ops('operator'),
        responses: { 201: json({ type: 'object' }), ...errors(400, 401, 403, 409) },
      },
    },
    '/api/v1/vessels/{name}': {
      get: { summary: 'one vessel', ...vesselOrOps, responses: { 200: json({ type: 'object' }), ...errors(401, 404) } },
    },
    '/api/v1/vessels/{name}/tokens': {
      post: {
        summary: 'a new enrolment token for a vessel',
        ...ops('operator'),
        responses: { 201: json({ type: 'object' }), ...errors(401, 403, 404) },
      },
    },
    '/api/v1/vessels/{name}/revoke': {
      post: {
        summary: 'revoke a vessel credential',
        ...ops('admin'),
        responses: { 200: json({ type: 'object' }), ...errors(401, 403, 404) },
      },
    },
    '/api/v1/vessels/{name}/desired': {
      get: {
        summary: 'desired state; send If-None-Match to get 304 when nothing changed',
        ...vesselOrOps,
        parameters: [
          {
            name: 'with',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: ['manifest'] },
            description: "'manifest': carry the release's signed manifest when it is small (one round trip fewer)",
          },
        ],
        responses: { 200: json(schema(desiredStateSchema)), 304: { description: 'not modified' }, ...errors(401, 404) },
      },
    },
    '/api/v1/vessels/{name}/status': {
      post: {
        summary: 'a vessel reports its state',
        security: [{ vessel: [] }],
        requestBody: { content: { 'application/json': { schema: schema(vesselStatusReportSchema) } } },
        responses: { 204: { description: 'stored' }, ...errors(400, 401, 403, 404) },
      },
    },
    '/api/v1/roots': {
      get: { summary: 'root versions', ...vesselOrOps, responses: { 200: json({ type: 'object' }) } },
      put: {
        summary: 'push the next root document (verified against the current one)',
        ...ops('admin'),
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 403, 409, 413) },
      },
    },
    '/api/v1/roots/{version}': {
      get: {
        summary: 'a signed root document',
        ...vesselOrOps,
        responses: { 200: { description: 'envelope' }, ...errors(401, 404) },
      },
    },
    '/api/v1/releases': {
      get: {
        summary: 'published releases',
        ...ops('viewer'),
        responses: { 200: json({ type: 'object' }), ...errors(401, 403) },
      },
      put: {
        summary: 'publish a signed release manifest (verified against the root; sequence must increase)',
        ...ops('operator'),
        requestBody: { content: { 'application/vnd.tender.envelope+json': { schema: { type: 'object' } } } },
        responses: {
          200: json({ type: 'object' }, 'already published, identical'),
          201: json({ type: 'object' }),
          ...errors(400, 401, 403, 409, 413),
        },
      },
    },
    '/api/v1/releases/next-sequence': {
      get: {
        summary: 'the next free sequence number for an app',
        ...ops('operator'),
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 403) },
      },
    },
    '/api/v1/rollouts': {
      get: {
        summary: 'rollouts, newest first',
        ...ops('viewer'),
        responses: { 200: json({ type: 'object' }), ...errors(401, 403) },
      },
      post: {
        summary: 'make a release the desired one for all vessels, a group or one vessel',
        ...ops('operator'),
        responses: { 201: json({ type: 'object' }), ...errors(400, 401, 403, 404) },
      },
    },
    '/api/v1/vessels/{name}/releases/{version}': {
      get: {
        summary: 'a signed release manifest targeted at this vessel ({version} is APP@VERSION)',
        ...vesselOrOps,
        responses: { 200: { description: 'envelope' }, ...errors(401, 404) },
      },
    },
    '/api/v1/vessels/{name}/telemetry': {
      post: {
        summary:
          'a telemetry batch (columnar JSON, Content-Encoding gzip or br); records are stored once by (vessel, epoch, seq)',
        security: [{ vessel: [] }],
        requestBody: { content: { 'application/vnd.tender.telemetry+json': { schema: schema(telemetryBatchSchema) } } },
        responses: {
          200: json({ type: 'object', properties: { stored: { type: 'integer' }, duplicates: { type: 'integer' } } }),
          ...errors(400, 401, 403, 404, 413, 429),
        },
      },
    },
    '/api/v1/vessels/{name}/logs': {
      get: {
        summary: 'logs shipped ashore; ?service=&since=&until=&grep=&limit=',
        ...vesselOrOps,
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 404) },
      },
    },
    '/api/v1/vessels/{name}/events': {
      get: {
        summary: 'events shipped ashore, newest first, with the telemetry backlog and drop counts',
        ...vesselOrOps,
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 404) },
      },
    },
    '/api/v1/vessels/{name}/metrics': {
      get: {
        summary: 'one metric as a time series; ?name=&since=&limit=',
        ...vesselOrOps,
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 404) },
      },
    },
    '/api/v1/chunks/missing': {
      post: {
        summary: 'which of these chunk digests the hub lacks (one request per publish)',
        ...ops('operator'),
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 403, 413) },
      },
    },
    '/api/v1/chunks': {
      post: {
        summary:
          'upload chunks: entries of [32-byte sha256][4-byte raw size][4-byte compressed size][brotli bytes]; each verified before it is stored',
        ...ops('operator'),
        requestBody: { content: { 'application/vnd.tender.pack': { schema: { type: 'string', format: 'binary' } } } },
        responses: { 200: json({ type: 'object' }), ...errors(400, 401, 403, 413) },
      },
    },
    '/api/v1/vessels/{name}/packs': {
      post: {
        summary:
          'fix a list of missing chunks of a release targeted at this vessel as a pack; returns its id and length, or with Accept: application/vnd.tender.pack the pack itself (id in Tender-Pack-Id), saving a round trip',
        security: [{ vessel: [] }],
        responses: {
          201: {
            description: 'the pack id and length (JSON), or the pack bytes',
            content: {
              'application/json': { schema: { type: 'object' } },
              'application/vnd.tender.pack': { schema: { type: 'string', format: 'binary' } },
            },
          },
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    '/api/v1/vessels/{name}/packs/{id}': {
      get: {
        summary:
          'a pack: entries of [32-byte sha256][4-byte compressed size][brotli bytes]; Range and If-Range supported, bytes stable across restarts',
        ...vesselOrOps,
        responses: {
          200: { description: 'the pack' },
          206: { description: 'a range of it' },
          ...errors(401, 404, 416),
        },
      },
    },
    '/api/v1/tokens': {
      post: {
        summary: 'create an ops token',
        ...ops('admin'),
        responses: { 201: json({ type: 'object' }), ...errors(400, 401, 403) },
      },
    },
    '/api/v1/openapi.json': {
      get: { summary: 'this document', ...vesselOrOps, responses: { 200: json({ type: 'object' }) } },
    },
  },
} as const;
