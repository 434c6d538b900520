import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { TenderError } from '../errors.js';
import { writeFileAtomic } from '../fs-atomic.js';
import { fingerprintOf, showFingerprint } from './certs.js';

/** The link to the hub was refused on our side: its certificate, its scheme or its handshake. */
export class HubTlsError extends TenderError {
  constructor(message: string) {
    super(message, 'hub_tls');
  }
}

/** The subset of fetch the hub clients use; what `createHubFetch` returns and `globalThis.fetch` is. */
export interface HubFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array<ArrayBuffer> | string;
  signal?: AbortSignal;
}
export type HubFetch = (url: string, init?: HubFetchInit) => Promise<Response>;

/** Bytes on the wire (TCP payload: TLS records and handshakes) and handshakes, since the fetcher was made. */
export interface LinkMeter {
  connections: number;
  fullHandshakes: number;
  resumedHandshakes: number;
  bytesSent: number;
  bytesReceived: number;
  /** The bytes of the last completed handshake, both ways, as counted at its end (tickets come after). */
  lastHandshakeBytes: number;
}

export interface HubFetchOptions {
  /**
   * PEM certificates trusted for the hub instead of the system store (the pins of enrolment), or where to
   * read them at each new connection (they change when a signed announcement replaces them).
   */
  ca?: string[] | (() => string[]);
  /** Allow http:// URLs (plain text on the link): only with the operator's explicit flag. */
  allowHttp?: boolean;
  /** Where the latest session ticket per hub is kept, so a reboot still resumes. */
  sessionFile?: string;
  /** A handshake not done in this time is dropped: a link that swallows packets sends no reset. */
  handshakeTimeoutMs?: number;
  /** Idle keep-alive sockets are kept this long (the hub closes its side after 65 s). */
  keepAliveMs?: number;
  meter?: LinkMeter;
}

// Two satellite round trips for TCP and TLS 1.3 with margin for a 1.5 s RTT and loss; not a minute.
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 20_000;
// Under the hub's 65 s keep-alive, so the agent never writes on a socket the hub is closing.
const DEFAULT_KEEP_ALIVE_MS = 55_000;
// A pooled or long-polling socket is probed (TCP keep-alive) only after this much silence. Node's default
// for a keep-alive agent, 1 s, sends a 52-byte probe and gets a 52-byte ACK every second a socket waits:
// megabytes a month on a metered link. The agent's own watchdogs and idle timeout find dead links.
const TCP_PROBE_AFTER_MS = 15 * 60_000;
// A session file holds one ticket per hub address; a few KB.
const MAX_SESSION_FILE_BYTES = 64 * 1024;

export function newLinkMeter(): LinkMeter {
  return {
    connections: 0,
    fullHandshakes: 0,
    resumedHandshakes: 0,
    bytesSent: 0,
    bytesReceived: 0,
    lastHandshakeBytes: 0,
  };
}

/** Session tickets by host:port, kept in memory and (when a file is given) on disk. */
class TicketStore {
  private readonly tickets = new Map<string, Buffer>();
  constructor(private readonly file?: string) {
    if (!file || !existsSync(file)) return;
    try {
      const buf = readFileSync(file);
      if (buf.byteLength > MAX_SESSION_FILE_BYTES) return;
      const json = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(json))
        if (typeof v === 'string') this.tickets.set(k, Buffer.from(v, 'base64'));
    } catch {
      /* a torn or foreign file costs one full handshake, nothing more */
    }
  }
  get(key: string): Buffer | undefined {
    return this.tickets.get(key);
  }
  set(key: string, session: Buffer): void {
    this.tickets.set(key, session);
    if (!this.file) return;
    const json: Record<string, string> = {};
    for (const [k, v] of this.tickets) json[k] = v.toString('base64');
    try {
      writeFileAtomic(this.file, JSON.stringify(json), 0o600);
    } catch {
      /* resumption is an optimisation: a full disk must not fail the request */
    }
  }
  drop(key: string): void {
    this.tickets.delete(key);
  }
}

/** What a refused handshake means, in one line a crew member or an operator can act on. */
export function describeTlsFailure(err: NodeJS.ErrnoException, socket: TLSSocket | undefined, pinned: boolean): string {
  const chain = presentedChain(socket);
  const shown = chain.length
    ? ` (it presented ${showFingerprint(fingerprintOf(chain[chain.length - 1]!)).slice(0, 30)}...)`
    : '';
  const trust = pinned ? 'the CA pinned at enrolment' : 'the system store (or --ca)';
  switch (err.code) {
    case 'CERT_HAS_EXPIRED':
      return `hub certificate expired; refusing the link`;
    case 'CERT_NOT_YET_VALID':
      return `hub certificate is not valid yet (check this machine's clock); refusing the link`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_UNTRUSTED':
      return (
        `hub certificate is not signed by ${trust}${shown}; ` +
        'refusing the link (a man in the middle, or a new hub CA not announced)'
      );
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `hub certificate is for another name: ${err.message}; refusing the link`;
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return (
        `the hub did not answer TLS 1.3 (${err.message.split('\n')[0]!.slice(0, 120)}): ` +
        'a plain-HTTP server or an old proxy in the way; nothing sent'
      );
    default:
      return `TLS with the hub failed: ${err.code ?? ''} ${err.message.split('\n')[0]!.slice(0, 160)}`.trim();
  }
}

function presentedChain(socket: TLSSocket | undefined): X509Certificate[] {
  if (!socket) return [];
  try {
    const out: X509Certificate[] = [];
    let c = socket.getPeerCertificate(true);
    const seen = new Set<string>();
    while (c && c.raw && !seen.has(c.fingerprint256)) {
      seen.add(c.fingerprint256);
      out.push(new X509Certificate(c.raw));
      c = c.issuerCertificate;
    }
    return out;
  } catch {
    return [];
  }
}

/**
 * An https.Agent whose sockets are our own: a TCP socket we count, TLS 1.3 over it with the pinned CAs,
 * the last session ticket offered (from disk after a reboot), a deadline on the handshake.
 */
class HubAgent extends HttpsAgent {
  constructor(
    private readonly o: HubFetchOptions,
    private readonly tickets: TicketStore,
  ) {
    super({
      keepAlive: true,
      keepAliveMsecs: TCP_PROBE_AFTER_MS,
      maxSockets: 8,
      timeout: o.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS,
    });
  }

  override createConnection(options: RequestOptions, cb?: (err: Error | null, stream: Duplex) => void): Duplex {
    const meter = this.o.meter;
    const host = options.host ?? options.hostname ?? 'localhost';
    const port = Number(options.port ?? 443);
    const key = `${host}:${port}`;
    const raw = netConnect({ host, port });
    const socket = tlsConnect({
      ...(options as ConnectionOptions),
      socket: raw,
      host,
      servername: isIp(host) ? undefined : host,
      ca: typeof this.o.ca === 'function' ? this.o.ca() : this.o.ca,
      minVersion: 'TLSv1.3',
      session: this.tickets.get(key),
      rejectUnauthorized: true,
    });
    if (meter) meter.connections++;
    const handshakeMs = this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const deadline = setTimeout(() => {
      const s = Math.round(handshakeMs / 1000);
      socket.destroy(new HubTlsError(`TLS handshake with the hub stalled (nothing in ${s} s); nothing sent`));
    }, handshakeMs);
    deadline.unref();
    socket.once('secureConnect', () => {
      clearTimeout(deadline);
      if (!meter) return;
      if (socket.isSessionReused()) meter.resumedHandshakes++;
      else meter.fullHandshakes++;
      meter.lastHandshakeBytes = raw.bytesRead + raw.bytesWritten;
    });
    socket.on('session', (s: Buffer) => this.tickets.set(key, s));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(deadline);
      // A ticket the hub no longer honours is simply not resumed; one that fails the handshake is dropped.
      if (!socket.isSessionReused()) this.tickets.drop(key);
      if (!(err instanceof HubTlsError) && isTlsRefusal(err))
        (err as Error).message = describeTlsFailure(err, socket, this.o.ca !== undefined);
    });
    raw.once('close', () => {
      clearTimeout(deadline);
      if (!meter) return;
      meter.bytesSent += raw.bytesWritten;
      meter.bytesReceived += raw.bytesRead;
    });
    // The agent calls its callback itself with the socket returned here.
    void cb;
    return socket;
  }
}

function isTlsRefusal(err: NodeJS.ErrnoException): boolean {
  return /^(CERT_|UNABLE_|SELF_SIGNED|DEPTH_ZERO|ERR_TLS_|ERR_SSL_|EPROTO)/.test(err.code ?? '');
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/**
 * A fetch for talking to the hub: https:// verified against the pinned CAs (or the system store), TLS 1.3
 * only, keep-alive, session resumption across restarts, bytes counted; http:// only when allowed. Never
 * follows a redirect (a hub that sends one elsewhere, or to http://, gets its answer back as it is).
 */
export function createHubFetch(o: HubFetchOptions = {}): HubFetch {
  const tickets = new TicketStore(o.sessionFile);
  const agent = new HubAgent(o, tickets);
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const u = new URL(url);
      if (u.protocol === 'http:' && !o.allowHttp) {
        reject(
          new HubTlsError(
            `hub ${u.origin} is plain http://: refusing to send anything in clear (enrol against an https:// hub, or set insecureHttp)`,
          ),
        );
        return;
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        reject(new HubTlsError(`hub URL ${u.origin} is neither https:// nor http://`));
        return;
      }
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      const raw = init.body;
      const body = raw === undefined ? undefined : typeof raw === 'string' ? Buffer.from(raw) : Buffer.from(raw);
      if (body) headers['content-length'] = String(body.byteLength);
      const opts = { method: init.method ?? 'GET', headers, signal: init.signal };
      const onResponse = (res: IncomingMessage) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const x of v) h.append(k, x);
          else if (v !== undefined) h.set(k, v);
        }
        const status = res.statusCode ?? 0;
        const nullBody = status === 204 || status === 304 || opts.method === 'HEAD';
        if (nullBody) res.resume();
        const body = nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers: h }));
      };
      let req: ClientRequest;
      if (u.protocol === 'https:') req = httpsRequest(u, { ...opts, agent }, onResponse);
      else req = httpRequest(u, opts, onResponse);
      // HTTP/1.1 is persistent without it: node's "Connection: keep-alive" is 24 bytes on every request.
      req.removeHeader('connection');
      req.once('error', (err) => {
        const e = err as NodeJS.ErrnoException;
        const reason = init.signal?.reason as Error | undefined;
        if (e.name === 'AbortError' && reason?.name === 'TimeoutError') reject(reason);
        else reject(err);
      });
      req.end(body);
    });
}

/**
 * The chain a hub presents, read without trusting it and without sending anything but a ClientHello: how a
 * vessel holding only a pin (the enrolment token's) finds the certificate the pin names.
 */
export function probeHubChain(url: string, timeoutMs = DEFAULT_HANDSHAKE_TIMEOUT_MS): Promise<X509Certificate[]> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port: Number(u.port || 443),
      servername: isIp(host) ? undefined : host,
      minVersion: 'TLSv1.3',
      // Only to read the chain: the pin decides, below, and nothing but the handshake crosses this socket.
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HubTlsError(`TLS handshake with ${u.origin} stalled (nothing in ${Math.round(timeoutMs / 1000)} s)`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain = presentedChain(socket);
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new HubTlsError(
          isTlsRefusal(err)
            ? describeTlsFailure(err, socket, true)
            : `cannot reach the hub at ${u.origin}: ${err.code ?? err.message}`,
        ),
      );
    });
  });
}
