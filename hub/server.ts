import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { buildHub } from './app.js';
import { TenderError } from '../shared/errors.js';
import { addRoot } from './roots.js';
import { openHubStore, redact, type HubStoreLocation } from './store/open-store.js';
import { loadHubTls, loadTicketKeys, type HubTlsFiles, type HubTlsState } from './tls.js';
import { showFingerprint } from '../shared/tls/certs.js';
import { showPins } from '../shared/protocol/hub-tls.js';
import { announcedPins } from './routes/hub-tls.js';
import type { HubStore } from './store/hub-store.js';

export class HubServeError extends TenderError {}

// The ticket key's age is checked this often (it is renewed weekly).
const TICKET_CHECK_MS = 3600_000;
// In-flight requests get this long to finish on SIGTERM before the process exits anyway.
const SHUTDOWN_GRACE_MS = 10_000;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) throw new HubServeError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** The process around the app: root import, port, signals, graceful shutdown. */
export async function serveHub(opts: {
  store: HubStoreLocation;
  listen: string;
  rootFile?: string;
  tls?: HubTlsFiles;
  logger: Logger;
  pool?: number;
  perVesselMetrics?: boolean;
}): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  const store = await openHubStore(opts.store, { pool: opts.pool });
  opts.logger.info(
    opts.store.db === undefined
      ? { store: 'sqlite', data: opts.store.dataDir }
      : { store: 'postgres', db: redact(opts.store.db), chunks: opts.store.chunks ?? opts.store.dataDir },
    'hub store open',
  );
  // The ticket key lives beside the embedded store; hubs on PostgreSQL without a data folder make one
  // per process (a resumed session then works only with the hub that issued its ticket).
  const ticketDir = opts.store.dataDir;
  const tls = opts.tls
    ? { state: loadHubTls(opts.tls), ticketKeys: ticketDir ? loadTicketKeys(ticketDir) : randomBytes(48) }
    : undefined;
  if (tls) logTls(opts.logger, tls.state, 'TLS certificate loaded');
  else opts.logger.warn('serving plain HTTP: vessels need --insecure-http to enrol (unless a TLS proxy is in front)');
  const { app, deps, reloadTls } = await buildHub({
    dataDir: opts.store.dataDir ?? '',
    store,
    logger: opts.logger,
    tls,
    perVesselMetrics: opts.perVesselMetrics,
  });
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
  const scheme = tls ? 'https' : 'http';
  opts.logger.info({ url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${actualPort}` }, 'hub listening');

  // A renewed certificate is read on SIGHUP (certbot's deploy hook, a cron job); a bad one is refused and
  // the hub keeps serving the one it has. The ticket key is renewed by age while the hub runs.
  const onHup = async () => {
    if (!opts.tls) return opts.logger.warn('SIGHUP: no --tls-cert to reload');
    try {
      const next = loadHubTls(opts.tls);
      const unannounced = await unannouncedCa(deps.store, deps.tls(), next);
      if (unannounced)
        return opts.logger.error(
          { reason: unannounced },
          'TLS certificate not reloaded; still serving the old one (pinned vessels would refuse the new CA)',
        );
      reloadTls(next);
      logTls(opts.logger, next, 'TLS certificate reloaded');
    } catch (err) {
      opts.logger.error({ reason: (err as Error).message }, 'TLS certificate not reloaded; still serving the old one');
    }
  };
  process.on('SIGHUP', () => void onHup());
  const pins = tls?.state.anchor && (await announcedPins(deps.store));
  if (pins && !pins.pins.includes(tls!.state.anchor!.pin))
    opts.logger.error(
      { serving: showFingerprint(tls!.state.anchor!.pin), announced: showPins(pins.pins), sequence: pins.sequence },
      'serving a CA the hub-tls announcement leaves out: pinned vessels refuse this hub (see tender tls announce)',
    );
  const ticketTimer = tls
    ? setInterval(() => {
        if (!ticketDir) return;
        const keys = loadTicketKeys(ticketDir);
        if (!keys.equals(tls.ticketKeys)) {
          tls.ticketKeys = keys;
          (app.server as unknown as TlsServer).setTicketKeys(keys);
          opts.logger.info('TLS session ticket key renewed');
        }
      }, TICKET_CHECK_MS)
    : undefined;
  ticketTimer?.unref();

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
      process.off('SIGHUP', onHup);
      clearInterval(ticketTimer);
      app.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

function logTls(logger: Logger, state: HubTlsState, msg: string): void {
  logger.info(
    {
      subject: state.leaf.subject,
      notAfter: state.leaf.notAfter,
      keyType: state.leaf.keyType,
      pinned: state.anchor ? showFingerprint(state.anchor.pin) : null,
    },
    msg,
  );
  if (state.leaf.keyType !== 'ec')
    logger.warn({ keyType: state.leaf.keyType }, 'the TLS key is not ECDSA: every full handshake costs the link more');
  if (!state.anchor)
    logger.warn(
      'no self-signed CA in --tls-cert (or --tls-ca): enrolment tokens pin nothing; vessels use their system store',
    );
}

/**
 * Why a renewed certificate must not be served: its CA differs from the one served now and is not in the
 * announcement in force, so every pinned vessel would refuse the hub. Undefined: fine to serve (same CA, a
 * CA the vessels were told of, or no pinnable CA either side).
 */
async function unannouncedCa(
  store: HubStore,
  was: HubTlsState | undefined,
  next: HubTlsState,
): Promise<string | undefined> {
  const [from, to] = [was?.anchor?.pin, next.anchor?.pin];
  if (!from || !to || from === to) return undefined;
  const announced = await announcedPins(store);
  if (announced?.pins.includes(to)) return undefined;
  return (
    `the new certificate's CA ${showFingerprint(to)} is not announced to the vessels` +
    (announced
      ? ` (hub-tls #${announced.sequence} lists ${showPins(announced.pins)})`
      : ' (no hub-tls announcement yet)') +
    `: run tender tls announce --pin-ca OLD.pem --pin-ca NEW.pem, wait for the fleet to sync, then reload`
  );
}
