import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { buildHub } from './app.js';
import { TenderError } from '../shared/errors.js';
import { addRoot } from './roots.js';

export class HubServeError extends TenderError {}

// In-flight requests get this long to finish on SIGTERM before the process exits anyway.
const SHUTDOWN_GRACE_MS = 10_000;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new HubServeError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The process around the app: root import, port, signals, graceful shutdown. */
export async function serveHub(opts: {
  dataDir: string;
  listen: string;
  rootFile?: string;
  logger: Logger;
}): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const { app, deps } = await buildHub({ dataDir: opts.dataDir, logger: opts.logger });
  if (opts.rootFile) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(opts.rootFile);
    } catch (err) {
      throw new HubServeError(
        `cannot read --root ${opts.rootFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    const root = await addRoot(deps.store, bytes, deps.now());
    opts.logger.info({ version: root.version }, 'root document loaded');
  } else if (!(await deps.store.roots.latest())) {
    opts.logger.warn('no root document yet: vessels cannot enrol until the hub is started with --root FILE');
  }
  await app.listen({ host, port });
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  opts.logger.info({ url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}` }, 'hub listening');

  await new Promise<void>((resolve) => {
    let closing = false;
    const stop = (signal: string) => {
      if (closing) return;
      closing = true;
      opts.logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => {
        opts.logger.warn('shutdown grace period over; closing remaining connections');
        app.server.closeAllConnections();
      }, SHUTDOWN_GRACE_MS);
      force.unref();
      app.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
