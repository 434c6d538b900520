import { createConnection, createServer, type Server } from 'node:net';
import { existsSync, readFileSync, unlinkSync, chmodSync } from 'node:fs';
import { z } from 'zod';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { RouterProxy, type Route } from './proxy.js';
import { describeZodError } from '../../shared/validation.js';

export class RouterControlError extends TenderError {}

const routeSchema = z.strictObject({
  port: z.number().int().min(1).max(65535),
  target: z.strictObject({ host: z.string().max(64), port: z.number().int().min(1).max(65535) }),
  app: z.string().max(64),
  service: z.string().max(64),
  release: z.string().max(64),
  colour: z.string().max(16),
});
const requestSchema = z.union([
  z.strictObject({ op: z.literal('get') }),
  z.strictObject({ op: z.literal('set'), routes: z.array(routeSchema).max(256) }),
]);
const stateSchema = z.strictObject({ version: z.literal(1), routes: z.array(routeSchema) });

// A control message is a routing table for a handful of services.
const MAX_MESSAGE_BYTES = 256 * 1024;
// The agent waits this long for the router to answer before treating it as down.
const CONTROL_TIMEOUT_MS = 10_000;

export function routerPaths(dataDir: string) {
  return { socket: `${dataDir}/router.sock`, state: `${dataDir}/router.json` };
}

/**
 * `tender router run`: restore the persisted routes, hold the ports, and take new routing tables from the
 * agent over a unix socket. Each table is persisted (atomically) before the router answers, so a router
 * restarted after a power cut comes back with the last table it acknowledged.
 */
export async function runRouter(opts: {
  dataDir: string;
  bind: string;
  log: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const paths = routerPaths(opts.dataDir);
  const proxy = new RouterProxy(opts.bind);
  if (existsSync(paths.state)) {
    const r = stateSchema.safeParse(parseStrictJson(readFileSync(paths.state)));
    if (!r.success) throw new RouterControlError(`${paths.state}: ${describeZodError(r.error, '(root)')}`);
    await proxy.apply(r.data.routes);
    opts.log.info({ routes: r.data.routes.length }, 'routes restored');
  }
  if (existsSync(paths.socket)) unlinkSync(paths.socket);
  let queue = Promise.resolve();
  const server: Server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_MESSAGE_BYTES) return conn.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      // One change at a time: a second table waits for the first to be bound and persisted.
      queue = queue.then(async () => {
        let reply: unknown;
        try {
          const req = requestSchema.parse(parseStrictJson(line, { maxBytes: MAX_MESSAGE_BYTES }));
          if (req.op === 'set') {
            await proxy.apply(req.routes);
            writeFileAtomic(paths.state, `${JSON.stringify({ version: 1, routes: req.routes })}\n`, 0o600);
            opts.log.info(
              { routes: req.routes.map((r) => `${r.port}->${r.target.port} ${r.service}@${r.release}`) },
              'routes set',
            );
          }
          reply = { ok: true, routes: proxy.routes(), connections: proxy.connections() };
        } catch (err) {
          reply = { ok: false, error: errorMessage(err) };
        }
        conn.end(`${JSON.stringify(reply)}\n`);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(paths.socket, () => resolve());
  });
  // The agent and crew commands (root, or members of the `tender` group) send routing tables here.
  chmodSync(paths.socket, 0o660);
  opts.log.info({ socket: paths.socket, bind: opts.bind }, 'router running');
  await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));
  server.close();
  await proxy.close();
}

export interface RouterState {
  routes: Route[];
  connections: Record<number, number>;
}

/** Talk to the router over its unix socket. */
export function routerRequest(
  socketPath: string,
  req: { op: 'get' } | { op: 'set'; routes: Route[] },
): Promise<RouterState> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new RouterControlError(`router at ${socketPath} did not answer in ${CONTROL_TIMEOUT_MS / 1000}s`));
    }, CONTROL_TIMEOUT_MS);
    conn.setEncoding('utf8');
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new RouterControlError(
          `router not reachable at ${socketPath} (${err.code ?? err.message}); is tender-router running?`,
        ),
      );
    });
    conn.on('data', (d: string) => (buf += d));
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(buf) as { ok: boolean; error?: string } & RouterState;
        if (!r.ok) reject(new RouterControlError(`router refused the routes: ${r.error}`));
        else resolve({ routes: r.routes, connections: r.connections });
      } catch {
        reject(new RouterControlError('router sent a malformed answer'));
      }
    });
    conn.write(`${JSON.stringify(req)}\n`);
  });
}
