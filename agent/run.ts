import type { Logger } from 'pino';
import { loadPrivateKey } from '../shared/keys.js';
import { errorMessage } from '../shared/errors.js';
import { loadAgentConfig, vesselPaths, type AgentConfig } from './config.js';
import { completePendingEnrolment, loadTrustedRoot } from './enrol.js';
import { HubClient, HubRefusedError, HubUnreachableError } from './hub-client.js';
import { openStateStore, type StateStore } from './state-store.js';
import { backoffDelayMs, pollDelayMs, sleep } from './backoff.js';
import { syncOnce } from './sync.js';

// First retry after a failure comes quickly: most satellite drops last seconds to minutes.
const BACKOFF_BASE_MS = 5_000;

/**
 * The agent's main loop: sync with the hub, sleep, repeat, until the signal aborts. An unreachable hub
 * is the normal state at sea: it is recorded for `tender status` and logged at info, never as an error.
 */
export async function runAgent(opts: { configPath: string; log: Logger; signal: AbortSignal }): Promise<void> {
  const { log, signal } = opts;
  let config = loadAgentConfig(opts.configPath);
  const paths = vesselPaths(config.dataDir);
  const store = openStateStore(paths.db);
  try {
    store.event('agent.started', { vessel: config.vesselName });
    log.info({ vessel: config.vesselName, hub: config.hub }, 'agent started');
    await loop();
  } finally {
    store.close();
    log.info('agent stopped');
  }

  async function loop(): Promise<void> {
    let failures = 0;
    let root = loadTrustedRoot(config.dataDir);
    let client: HubClient | undefined;
    while (!signal.aborted) {
      try {
        if (config.pendingToken) {
          config = await completePendingEnrolment(config, opts.configPath);
          store.event('vessel.enrolled', { vesselId: config.vesselId });
          log.info({ vesselId: config.vesselId }, 'offline enrolment completed with the hub');
        }
        client ??= makeClient(config, store);
        const result = await syncOnce({ client, store, vesselName: config.vesselName, rootPath: paths.root, root, log });
        root = result.root;
        if (failures > 0) log.info({ after: failures }, 'hub reachable again');
        failures = 0;
        await sleep(pollDelayMs(config.pollIntervalSeconds * 1000), signal);
      } catch (err) {
        failures++;
        noteFailure(store, log, err, failures);
        await sleep(backoffDelayMs(failures, Math.min(BACKOFF_BASE_MS, config.pollIntervalSeconds * 1000), config.maxBackoffSeconds * 1000), signal);
      }
    }
  }
}

function makeClient(config: AgentConfig, store: StateStore): HubClient {
  const key = loadPrivateKey(vesselPaths(config.dataDir).key);
  return new HubClient(config.hub, config.vesselId!, key, store.get<number>('hub.skewMs') ?? 0, (skew) => store.set('hub.skewMs', skew));
}

function noteFailure(store: StateStore, log: Logger, err: unknown, failures: number): void {
  const message = errorMessage(err);
  if (err instanceof HubUnreachableError) {
    store.setMany({ 'link.state': 'down', 'link.lastError': message });
    // The first failure is worth a line; the next hundred of an outage are not.
    if (failures === 1) log.info({ reason: message }, 'hub unreachable; will keep trying');
    else log.debug({ reason: message, failures }, 'hub still unreachable');
    return;
  }
  if (err instanceof HubRefusedError && (err.httpStatus === 401 || err.httpStatus === 403 || err.httpStatus === 409)) {
    store.setMany({ 'link.state': 'refused', 'link.lastError': message });
    log.warn({ reason: message }, 'hub refused this vessel (revoked or enrolment used up?)');
    return;
  }
  store.setMany({ 'link.state': 'down', 'link.lastError': message });
  log.warn({ reason: message, failures }, 'sync with the hub failed');
}
