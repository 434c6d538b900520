import { TenderError } from '../shared/errors.js';
import type { PrivateKey } from '../shared/trust/keys.js';
import { signVesselRequest } from '../shared/protocol/vessel-auth.js';
import { vesselNow } from './clock.js';

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

// Control requests carry a few KB; over a 0.2 Mbit/s link with 1.5 s round trips this is still generous.
export const CONTROL_REQUEST_TIMEOUT_MS = 30_000;
// A Date header is rounded to the second; smaller offsets are noise and not worth correcting.
const SKEW_NOISE_MS = 2_000;

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
  ) {}

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<HubResponse> {
    const first = await this.once(method, path, opts);
    if (first.status !== 401) return first;
    // A 401 may only mean our clock offset moved (a ship's clock was just reset): learn it and retry once.
    const before = this.skewMs;
    this.learnSkew(first.headers, true);
    return this.skewMs !== before ? this.once(method, path, opts) : first;
  }

  private async once(method: string, path: string, opts: RequestOptions): Promise<HubResponse> {
    const body = opts.raw ?? (opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body)));
    const ts = vesselNow() + this.skewMs;
    const headers: Record<string, string> = {
      ...(opts.headers ?? {}),
      ...signVesselRequest(this.key, this.vesselId, method, path, ts, body),
    };
    if (body && !headers['content-type']) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.hub}${path}`, {
        method,
        headers,
        body: body ? new Uint8Array(body) : undefined,
        signal: AbortSignal.timeout(opts.timeoutMs ?? CONTROL_REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new HubUnreachableError(`hub ${this.hub} unreachable: ${describeFetchError(err)}`);
    }
    let buf: Buffer;
    try {
      buf = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw new HubUnreachableError(`hub ${this.hub} cut the response: ${describeFetchError(err)}`);
    }
    this.learnSkew(res.headers, false);
    return { status: res.status, headers: res.headers, body: buf };
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
    const signed = signVesselRequest(this.key, this.vesselId, method, path, vesselNow() + this.skewMs, body);
    try {
      const res = await fetch(`${this.hub}${path}`, {
        method,
        headers: { ...headers, ...signed, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? new Uint8Array(body) : undefined,
        signal,
      });
      this.learnSkew(res.headers, false);
      return res;
    } catch (err) {
      throw new HubUnreachableError(`hub ${this.hub} unreachable: ${describeFetchError(err)}`);
    }
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
