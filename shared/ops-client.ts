import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { TenderError, UsageError } from './errors.js';
import { parseStrictJson } from './trust/strict-json.js';
import { describeZodError } from './validation.js';
import { stringOpt, type CommandContext } from './cli.js';
import { MEDIA } from './protocol/http.js';
import type { RouteDef } from './protocol/routes.js';
import { createHubFetch, type HubFetch } from './tls/hub-fetch.js';
import { parseCertificates, readPemFile, toPem } from './tls/certs.js';

export class HubRequestError extends TenderError {}

const cliConfigSchema = z.strictObject({
  hub: z.url().optional(),
  token: z.string().optional(),
  /** A PEM file of CAs to verify an https:// hub with instead of the system store. */
  ca: z.string().optional(),
});

// Control requests are small; a hub that has not answered in this time is down or the link is.
const OPS_REQUEST_TIMEOUT_MS = 30_000;

export interface HubTarget {
  hub: string;
  token?: string;
  /** PEM certificates trusted for the hub instead of the system store (--ca FILE). */
  ca?: string[];
}

/** The fetch ops commands reach the hub with: https:// verified (system store, or --ca), TLS 1.3. */
export function opsFetch(target: HubTarget): HubFetch {
  let f = fetchers.get(target);
  if (!f) {
    // http:// stays possible for a hub on the same machine or an office LAN: the operator typed it.
    f = createHubFetch({ ca: target.ca, allowHttp: true });
    fetchers.set(target, f);
  }
  return f;
}
const fetchers = new WeakMap<HubTarget, HubFetch>();

export function cliConfigPath(env: NodeJS.ProcessEnv): string {
  return env.TENDER_CONFIG ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'tender', 'cli.json');
}

/** Shore commands find the hub and token from flags, then env (TENDER_HUB, TENDER_TOKEN), then a config file. */
export function resolveHubTarget(ctx: CommandContext): HubTarget {
  const path = cliConfigPath(ctx.env);
  let file: z.infer<typeof cliConfigSchema> = {};
  if (existsSync(path)) {
    const parsed = cliConfigSchema.safeParse(parseStrictJson(readFileSync(path)));
    if (!parsed.success) throw new UsageError(`${path}: ${describeZodError(parsed.error, 'file')}`);
    file = parsed.data;
  }
  const hub = stringOpt(ctx, 'hub') ?? ctx.env.TENDER_HUB ?? file.hub;
  const token = stringOpt(ctx, 'token') ?? ctx.env.TENDER_TOKEN ?? file.token;
  if (!hub) throw new UsageError(`no hub: pass --hub URL, set TENDER_HUB, or write ${path}`);
  const caFile = stringOpt(ctx, 'ca') ?? ctx.env.TENDER_CA ?? file.ca;
  let ca: string[] | undefined;
  if (caFile) {
    try {
      ca = parseCertificates(readPemFile(caFile, '--ca'), `--ca ${caFile}`).map(toPem);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return { hub: hub.replace(/\/+$/, ''), token, ...(ca ? { ca } : {}) };
}

export const HUB_OPTIONS = {
  hub: { type: 'string' as const, description: 'hub URL (else TENDER_HUB, else the CLI config file)' },
  token: { type: 'string' as const, description: 'ops token (else TENDER_TOKEN, else the CLI config file)' },
  ca: {
    type: 'string' as const,
    description: 'PEM CA file to verify an https:// hub with (else TENDER_CA, else the system store)',
  },
};

export async function opsRequest<T = unknown>(
  target: HubTarget,
  method: string,
  path: string,
  body?: unknown,
  init: { raw?: Buffer; contentType?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  let payload: Buffer | undefined = init.raw;
  if (body !== undefined) payload = Buffer.from(JSON.stringify(body));
  if (payload) headers['content-type'] = init.contentType ?? MEDIA.json;
  let res: Response;
  try {
    res = await opsFetch(target)(`${target.hub}${path}`, {
      method,
      headers,
      body: payload ? new Uint8Array(payload) : undefined,
      signal: AbortSignal.timeout(OPS_REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HubRequestError(
      `cannot reach the hub at ${target.hub}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      /* not JSON: keep the text */
    }
    throw new HubRequestError(`hub answered ${res.status}: ${message}`);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

type JsonAnswer<S> = S extends { content: { 'application/json': { schema: infer Z extends z.ZodType } } }
  ? z.output<Z>
  : never;
/** What a route answers on success, as its catalogue entry types it. */
export type RouteAnswer<R extends RouteDef> =
  | (R['response'] extends Record<200, infer S> ? JsonAnswer<S> : never)
  | (R['response'] extends Record<201, infer S> ? JsonAnswer<S> : never);

/**
 * Call a route of the catalogue (its method; `path` from `paths`), and check the answer against the
 * route's response schema: a hub that answers something else is refused here, with the field named.
 */
export async function opsCall<R extends RouteDef>(
  target: HubTarget,
  route: R,
  path: string,
  body?: unknown,
  init: { raw?: Buffer; contentType?: string } = {},
): Promise<RouteAnswer<R>> {
  const answer = await opsRequest<unknown>(target, route.method, path, body, init);
  const schema = Object.entries(route.response as Record<string, { content?: Record<string, { schema: z.ZodType }> }>)
    .filter(([code]) => code.startsWith('2'))
    .map(([, r]) => r.content?.[MEDIA.json]?.schema)
    .find((s) => s !== undefined);
  if (!schema) return answer as RouteAnswer<R>;
  const r = schema.safeParse(answer);
  if (!r.success) throw new HubRequestError(`hub sent a malformed answer: ${describeZodError(r.error, 'body')}`);
  return r.data as RouteAnswer<R>;
}
