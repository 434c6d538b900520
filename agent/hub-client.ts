import type { z } from 'zod';
import { TenderError } from '../shared/errors.js';
import type { PrivateKey } from '../shared/trust/keys.js';
import { parseStrictJson } from '../shared/trust/strict-json.js';
import { describeZodError } from '../shared/validation.js';
import {
  COMPACT_AUTH_HEADER,
  signVesselRequest,
  signVesselRequestCompact,
  vesselOfPath,
} from '../shared/protocol/vessel-auth.js';
import { HEADER, MEDIA } from '../shared/protocol/http.js';
import { paths } from '../shared/protocol/routes.js';
import {
  desiredStateSchema,
  enrolResponseSchema,
  packCreatedSchema,
  type DesiredState,
  type EnrolRequest,
  type EnrolResponse,
  type PackCreated,
  type VesselStatusReport,
} from '../shared/protocol/bodies.js';
import { vesselNow } from './clock.js';
import { headerBytes, type LinkMeter } from './link-meter.js';
import type { HubFetch } from '../shared/tls/hub-fetch.js';
import { DELTA_FORMATS } from '../shared/content/solid.js';

/** A pack request; bases only when there are some (an older hub's schema is strict). */
const packBody = (release: string, digests: string[], bases?: [string, string][]) =>
  bases?.length ? { release, digests, bases } : { release, digests };
/**
 * The delta formats this agent applies, named on every pack request, and whether the content's solid groups
 * should follow the layer indexes (an older hub ignores both headers).
 */
const packHeadersFor = (ahead?: boolean): Record<string, string> => ({
  [HEADER.deltaFormats]: DELTA_FORMATS.join(','),
  ...(ahead ? { [HEADER.packAhead]: 'groups' } : {}),
});

/** What a pack request carries besides the chunks it names. */
export interface PackAsk {
  /** [wanted layer index, the index of its slot on board]: sent as deltas. */
  bases?: [string, string][];
  /** Ask for the solid groups of content to follow the layer indexes (HEADER.packAhead). */
  ahead?: boolean;
}

/** The hub could not be reached or did not answer in time: a normal state at sea, not an error to shout. */
export class HubUnreachableError extends TenderError {
  constructor(message: string) {
    super(message, 'hub_unreachable');
  }
}

/** The hub answered with an error status. */
export class HubRefusedError extends TenderError {
  constructor(
    message: string,
    readonly httpStatus: number,
  ) {
    super(message, 'hub_refused');
  }
}

/** The hub answered something that is not what the protocol says it answers. */
export class HubProtocolError extends TenderError {}

// Control requests carry a few KB; over a 0.2 Mbit/s link with 1.5 s round trips this is still generous.
export const CONTROL_REQUEST_TIMEOUT_MS = 30_000;
// A Date header is rounded to the second; smaller offsets are noise and not worth correcting.
const SKEW_NOISE_MS = 2_000;
// A desired state is a few hundred bytes, or up to ~22 KB with an embedded manifest.
const DESIRED_MAX_BYTES = 64 * 1024;

export interface RequestOptions {
  body?: unknown;
  /** Bytes sent as they are (already encoded); set content-type in headers. */
  raw?: Buffer;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface HubResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

/**
 * Signed requests from this vessel to the hub. The clock offset learned from the hub's Date header is
 * applied to every signature, so a vessel whose clock is far off (set back to 2020, or years ahead) still
 * authenticates; the offset is handed back to be persisted across restarts.
 */
export class HubClient {
  constructor(
    private readonly hub: string,
    private readonly vesselId: string,
    private readonly key: PrivateKey,
    public skewMs = 0,
    private readonly onSkew: (skewMs: number) => void = () => {},
    /** Counts what each exchange costs and how long it took (the status report's link meter). */
    readonly meter?: LinkMeter,
    /** How bytes reach the hub: the agent's pinned-TLS fetch (hub-link.ts); tests on plain HTTP use fetch. */
    private readonly fetch: HubFetch = globalThis.fetch,
    /**
     * Whether this hub takes the compact signature form (it said so on a desired state), kept across
     * restarts by the caller: `onCompact` hears each change.
     */
    public compactAuth = false,
    private readonly onCompact: (compact: boolean) => void = () => {},
  ) {}

  private packWaiters: (() => void)[] = [];

  /**
   * Resolves once the next pack request has taken its connection (or after `ms`): a request that can
   * wait (the status report of a new target) lets the download have the warm one, not a new handshake.
   */
  nextPackRequest(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref?.();
      const waiters = this.packWaiters;
      function done() {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }

  /** A pack request was just handed to the connection pool (its socket chosen): the waiters go. */
  private packRequestSent(): void {
    for (const w of this.packWaiters.splice(0)) w();
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<HubResponse> {
    const first = await this.once(method, path, opts);
    if (first.status !== 401) return first;
    if (this.compactAuth && vesselOfPath(path)) {
      // A hub that took the compact form and now refuses it was replaced by an older one: sign in full.
      const full = await this.once(method, path, opts, false);
      if (full.status !== 401) {
        this.setCompact(false);
        return full;
      }
    }
    // A 401 may only mean our clock offset moved (a ship's clock was just reset): learn it and retry once.
    const before = this.skewMs;
    this.learnSkew(first.headers, true);
    return this.skewMs !== before ? this.once(method, path, opts) : first;
  }

  private async once(
    method: string,
    path: string,
    opts: RequestOptions,
    compact = this.compactAuth,
  ): Promise<HubResponse> {
    const body = opts.raw ?? (opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body)));
    const headers: Record<string, string> = {
      ...(opts.headers ?? {}),
      ...this.sign(method, path, body, compact),
    };
    if (body && !headers['content-type']) headers['content-type'] = 'application/json';
    const up = this.requestBytes(method, path, headers, body?.length ?? 0);
    const started = performance.now();
    let res: Response;
    try {
      res = await this.fetch(`${this.hub}${path}`, {
        method,
        headers,
        body: body ? new Uint8Array(body) : undefined,
        signal: AbortSignal.timeout(opts.timeoutMs ?? CONTROL_REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      this.meter?.record({ up, down: 0, failed: true });
      throw new HubUnreachableError(`hub ${this.hub} unreachable: ${describeFetchError(err)}`);
    }
    const rttMs = performance.now() - started;
    let buf: Buffer;
    try {
      buf = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      this.meter?.record({ up, down: responseBytes(res, 0), failed: true });
      throw new HubUnreachableError(`hub ${this.hub} cut the response: ${describeFetchError(err)}`);
    }
    // Round trips of small exchanges only: a large body measures the link's bandwidth, not its latency.
    const small = up < 16 * 1024 && buf.length < 16 * 1024;
    this.meter?.record({ up, down: responseBytes(res, buf.length), ...(small && { rttMs }) });
    this.learnSkew(res.headers, false);
    if (!this.compactAuth && res.headers.get(COMPACT_AUTH_HEADER) === 'tv') this.setCompact(true);
    return { status: res.status, headers: res.headers, body: buf };
  }

  /** The signature headers: compact where the hub takes it and the path names this vessel, else full. */
  private sign(method: string, path: string, body: Buffer | undefined, compact: boolean): Record<string, string> {
    const ts = vesselNow() + this.skewMs;
    return compact && vesselOfPath(path)
      ? signVesselRequestCompact(this.key, method, path, ts, body)
      : signVesselRequest(this.key, this.vesselId, method, path, ts, body);
  }

  private setCompact(compact: boolean): void {
    this.compactAuth = compact;
    this.onCompact(compact);
  }

  /**
   * A signed GET (or, with a JSON body, POST) whose response body is streamed to the caller (large
   * downloads); errors as HubUnreachableError.
   */
  async stream(
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    jsonBody?: unknown,
  ): Promise<Response> {
    const body = jsonBody === undefined ? undefined : Buffer.from(JSON.stringify(jsonBody));
    const method = body ? 'POST' : 'GET';
    const signed = this.sign(method, path, body, this.compactAuth);
    const all = { ...headers, ...signed, ...(body ? { 'content-type': 'application/json' } : {}) };
    try {
      const res = await this.fetch(`${this.hub}${path}`, {
        method,
        headers: all,
        body: body ? new Uint8Array(body) : undefined,
        signal,
      });
      // A stream's body is counted by its declared length (a cut one counts what it promised).
      const length = Number(res.headers.get('content-length') ?? 0) || 0;
      this.meter?.record({
        up: this.requestBytes(method, path, all, body?.length ?? 0),
        down: responseBytes(res, length),
      });
      this.learnSkew(res.headers, false);
      return res;
    } catch (err) {
      throw new HubUnreachableError(`hub ${this.hub} unreachable: ${describeFetchError(err)}`);
    }
  }

  // ---- the hub API, one method per route the vessel calls (paths and bodies from shared/protocol)

  /** The desired state; with the ETag of the last one, `undefined` when nothing changed (a 304). */
  async getDesired(vessel: string, etag?: string): Promise<{ state: DesiredState; etag: string } | undefined> {
    // With the manifest when it is small: a new release costs one round trip fewer.
    const res = await this.request('GET', paths.vesselDesired(vessel, { with: 'manifest' }), {
      headers: etag ? { 'if-none-match': etag } : {},
    });
    if (res.status === 304) return undefined;
    expectOk(res, 'desired state');
    const state = parseAnswer(desiredStateSchema, res.body, 'desired state', DESIRED_MAX_BYTES);
    return { state, etag: res.headers.get('etag') ?? '' };
  }

  async postStatus(vessel: string, report: VesselStatusReport): Promise<void> {
    const res = await this.request('POST', paths.vesselStatus(vessel), { body: report });
    if (res.status !== 204) throw new HubRefusedError(`status report: hub answered ${res.status}`, res.status);
  }

  /** A signed root document, or null when the hub has no such version. */
  async getRoot(version: number): Promise<Buffer | null> {
    const res = await this.request('GET', paths.root(version));
    if (res.status === 404) return null;
    return expectOk(res, `root v${version}`).body;
  }

  /** The manifest of a release, streamed; from byte `from.offset` when its ETag still matches. */
  openManifest(
    vessel: string,
    app: string,
    version: string,
    from: { offset: number; etag: string } | undefined,
    signal: AbortSignal,
  ): Promise<Response> {
    const headers: Record<string, string> = from ? { range: `bytes=${from.offset}-`, 'if-range': from.etag } : {};
    return this.stream(paths.vesselManifest(vessel, app, version), headers, signal);
  }

  /** Fix a list of chunks of a release as a pack on the hub: its id and length. */
  async createPack(vessel: string, release: string, digests: string[], ask: PackAsk = {}): Promise<PackCreated> {
    const pending = this.request('POST', paths.vesselPacks(vessel), {
      body: packBody(release, digests, ask.bases),
      headers: packHeadersFor(ask.ahead),
    });
    this.packRequestSent();
    const res = await pending;
    return parseAnswer(packCreatedSchema, expectOk(res, 'pack').body, 'pack');
  }

  /**
   * Fix a pack and receive its bytes in the same answer (its id and length in the headers, see
   * packHeaders); the caller reads the stream.
   */
  createAndOpenPack(
    vessel: string,
    release: string,
    digests: string[],
    signal: AbortSignal,
    ask: PackAsk = {},
  ): Promise<Response> {
    const pending = this.stream(
      paths.vesselPacks(vessel),
      { accept: MEDIA.pack, ...packHeadersFor(ask.ahead) },
      signal,
      packBody(release, digests, ask.bases),
    );
    this.packRequestSent();
    return pending;
  }

  /** Bytes first..last (inclusive) of a pack, if it is still the one `etag` names. */
  openPack(
    vessel: string,
    id: string,
    range: { first: number; last: number; etag: string },
    signal: AbortSignal,
  ): Promise<Response> {
    const pending = this.stream(
      paths.vesselPack(vessel, id),
      { range: `bytes=${range.first}-${range.last}`, 'if-range': range.etag },
      signal,
    );
    this.packRequestSent();
    return pending;
  }

  /** A compressed telemetry batch; the answer as it came (the shipper decides on 413, 429, 400). */
  postTelemetry(vessel: string, body: Buffer, encoding: 'gzip' | 'br', timeoutMs: number): Promise<HubResponse> {
    return this.request('POST', paths.vesselTelemetry(vessel), {
      raw: body,
      headers: { 'content-type': MEDIA.telemetry, 'content-encoding': encoding },
      timeoutMs,
    });
  }

  /** The request line, the headers fetch is given plus Host, and the body (fetch adds a few of its own). */
  private requestBytes(method: string, path: string, headers: Record<string, string>, bodyLength: number): number {
    const host = new URL(this.hub).host;
    const line = `${method} ${path} HTTP/1.1\r\n`.length;
    return line + headerBytes([['host', host], ...Object.entries(headers)]) + bodyLength;
  }

  private learnSkew(headers: Headers, force: boolean): void {
    const date = headers.get('date');
    if (!date) return;
    const hubNow = Date.parse(date);
    if (Number.isNaN(hubNow)) return;
    const skew = hubNow - vesselNow();
    if (force || Math.abs(skew - this.skewMs) > SKEW_NOISE_MS) {
      this.skewMs = Math.abs(skew) > SKEW_NOISE_MS ? skew : 0;
      this.onSkew(this.skewMs);
    }
  }
}

/** Status line, headers and body of an answer as they came over the wire (before any decoding). */
function responseBytes(res: Response, bodyLength: number): number {
  return `HTTP/1.1 ${res.status} ${res.statusText}\r\n`.length + headerBytes(res.headers.entries()) + bodyLength;
}

export function describeFetchError(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'timed out';
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

/** Throw a HubRefusedError with the hub's message for a non-2xx answer. */
export function expectOk(res: HubResponse, what: string): HubResponse {
  if (res.status >= 200 && res.status < 300) return res;
  let message = res.body.toString('utf8').slice(0, 300);
  try {
    message = (JSON.parse(message) as { message?: string }).message ?? message;
  } catch {
    /* not JSON */
  }
  throw new HubRefusedError(`${what}: hub answered ${res.status}: ${message}`, res.status);
}

/** The id and length of a pack whose bytes ride in the answer that created it (undefined: not given). */
export function packHeaders(res: Response): { id: string; length: number; etag: string } | undefined {
  const id = res.headers.get(HEADER.packId) ?? '';
  const length = Number(res.headers.get(HEADER.packLength) ?? NaN);
  if (!/^[0-9a-f]{32}$/.test(id) || !Number.isSafeInteger(length)) return undefined;
  return { id, length, etag: res.headers.get('etag') ?? `"${id}"` };
}

function parseAnswer<S extends z.ZodType>(schema: S, body: Buffer, what: string, maxBytes?: number): z.output<S> {
  let json: unknown;
  try {
    json = parseStrictJson(body, maxBytes ? { maxBytes } : {});
  } catch (err) {
    throw new HubProtocolError(`hub sent a malformed ${what}: ${(err as Error).message}`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new HubProtocolError(`hub sent a malformed ${what}: ${describeZodError(r.error, what)}`);
  return r.data;
}

/**
 * Enrol: claim a one-time token with this vessel's public key. Unsigned (the hub knows no key of ours
 * yet); the only call a vessel makes before it has an identity.
 */
export async function enrol(
  hub: string,
  request: EnrolRequest,
  timeoutMs: number,
  fetcher: HubFetch = globalThis.fetch,
): Promise<EnrolResponse> {
  let res: Response;
  try {
    res = await fetcher(`${hub}${paths.enrol()}`, {
      method: 'POST',
      headers: { 'content-type': MEDIA.json },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new HubUnreachableError(`cannot reach the hub at ${hub}: ${describeFetchError(err)}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) {
    let message = body.toString('utf8').slice(0, 200);
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      /* keep text */
    }
    throw new HubRefusedError(`enrolment refused by the hub (${res.status}): ${message}`, res.status);
  }
  return parseAnswer(enrolResponseSchema, body, 'enrolment response');
}
