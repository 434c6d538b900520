import type { Logger } from 'pino';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { errorMessage } from '../shared/errors.js';
import { createDockerEngine } from '../shared/docker.js';
import type { TrustedRoot } from '../shared/trust/root.js';
import { loadAgentConfig, vesselPaths, type AgentConfig } from './config.js';
import { completePendingEnrolment, loadTrustedRoot } from './enrol.js';
import { HubClient, HubRefusedError, HubUnreachableError } from './hub-client.js';
import { applyHubTlsAnnouncement, hubFetchFor } from './hub-link.js';
import { openStateStore, type StateStore } from './state-store.js';
import { backoffDelayMs, pollDelayMs, sleep, Wakeup } from './backoff.js';
import { syncOnce } from './sync.js';
import { LinkMeter } from './link-meter.js';
import { createController, type Controller } from './release/controller.js';
import { createInstallSource } from './release/install-source.js';
import { withCarried } from './release/carried.js';
import { routerPaths } from './router/control.js';
import { startConsole } from './crew/console.js';
import { startControlSocket } from './crew/control-socket.js';
import { correctedNow, vesselNow } from './clock.js';
import { createChunkStore } from '../shared/content/chunk-store.js';
import { startCollector } from './telemetry/collector.js';
import { shipLoop, type ShipStats } from './telemetry/shipper.js';
import { createAgentMetrics, serveAgentMetrics } from './metrics.js';
import { openBackups } from './backup/setup.js';
import { backupLoop } from './backup/scheduler.js';
import { shipLoop as shipBackupsLoop } from './backup/ship-ashore.js';
import { createSelfUpdater } from './self-update/updater.js';
import { agentTargetOf } from './release/targets.js';

// First retry after a failure comes quickly: most satellite drops last seconds to minutes.
const BACKOFF_BASE_MS = 5_000;

/**
 * The agent's main loop: sync with the hub, bring the vessel to its target, sleep, repeat, until the
 * signal aborts. An unreachable hub is the normal state at sea: it is recorded for `tender status` and
 * logged at info, never as an error; everything on board keeps working without it.
 */
export async function runAgent(opts: {
  configPath: string;
  log: Logger;
  signal: AbortSignal;
}): Promise<{ restart?: string }> {
  const { log } = opts;
  // Aborted by the caller (SIGTERM) or by a self-update that switched the executable: the agent stops
  // cleanly and systemd starts the unit's `current` again (Restart=always).
  const stopping = new AbortController();
  const signal = stopping.signal;
  let restart: string | undefined;
  if (opts.signal.aborted) stopping.abort();
  else opts.signal.addEventListener('abort', () => stopping.abort(), { once: true });
  let config = loadAgentConfig(opts.configPath);
  const paths = vesselPaths(config.dataDir);
  const store = openStateStore(paths, {
    outboxCapBytes: config.telemetry.outboxCapBytes,
    freeDiskFloorBytes: config.telemetry.freeDiskFloorBytes,
    log,
    now: vesselNow,
  });
  let root: TrustedRoot = loadTrustedRoot(config.dataDir);
  let client: HubClient | undefined;
  const docker = createDockerEngine();
  const chunks = createChunkStore(`${config.dataDir}/chunks`);
  const controller = createController({
    vessel: config.vesselName,
    chunks,
    docker,
    store,
    routerSocket: routerPaths(config.dataDir).socket,
    root: () => root,
    keepReleases: config.keepReleases,
    watchMs: config.watchSeconds * 1000,
    log,
    source: createInstallSource({ client: () => client, store, docker, chunks, config, log, signal }),
    busy: () => backups.db.runningBackups().length > 0 || backups.db.runningRestores().length > 0,
  });
  // Rung by the sync loop when the target changed or the hub answers again: the apply loop looks at once.
  const targetChanged = new Wakeup();
  const backups = openBackups({ config, store, docker, root: () => root, log: log.child({ part: 'backup' }) });
  const selfUpdate = createSelfUpdater({
    dataDir: config.dataDir,
    store,
    chunks,
    root: () => root,
    source: createInstallSource({ client: () => client, store, docker, chunks, config, log, signal }),
    log: log.child({ part: 'self-update' }),
    settleMs: Math.min(config.watchSeconds * 1000, 60_000),
    now: () => correctedNow(store.get('hub.skewMs')),
    self: process.execPath,
    restart: (why) => {
      restart = why;
      stopping.abort();
    },
  });
  try {
    selfUpdate.startup();
    store.event('agent.started', { vessel: config.vesselName });
    log.info({ vessel: config.vesselName, hub: config.hub }, 'agent started');
    await controller
      .recover()
      .catch((err) => log.error({ reason: errorMessage(err) }, 'recovery of an interrupted update failed'));
    // A console that cannot bind (port taken) must not stop the agent: rollback still works from the CLI.
    const consoleServer = config.console
      ? await startConsole({ config, controller, store, log }).catch((err) => {
          log.warn({ reason: errorMessage(err) }, 'crew console not started');
          return undefined;
        })
      : undefined;
    // `tender rollback` asks the running agent, which can cut its own drain or gate short.
    const controlServer = await startControlSocket({ dataDir: config.dataDir, controller, log }).catch((err) => {
      log.warn({ reason: errorMessage(err) }, 'agent control socket not started: tender rollback acts by itself');
      return undefined;
    });
    const shipStats: ShipStats = { batches: 0, records: 0, wireBytes: 0 };
    const linkUp = new Wakeup();
    const metricsServer = await serveAgentMetrics(
      createAgentMetrics(store, shipStats),
      config.telemetry.metricsListen,
      log,
    ).catch((err) => {
      log.warn({ reason: errorMessage(err) }, 'agent metrics endpoint not started');
      return undefined;
    });
    try {
      await Promise.all([
        syncLoop(linkUp),
        applyLoop(),
        watchLoop(controller, signal, log),
        selfUpdateLoop(),
        driftLoop(controller, signal, log, config.driftCheckSeconds * 1000),
        startCollector({
          vessel: config.vesselName,
          docker,
          outbox: store.outbox,
          log,
          signal,
          statsIntervalMs: () =>
            (store.get('desired')?.settings?.hostMetricsSeconds ?? config.telemetry.statsIntervalSeconds) * 1000,
          dataDir: config.dataDir,
        }),
        shipLoop({
          client: () => client,
          outbox: store.outbox,
          vesselName: config.vesselName,
          log,
          signal,
          maxBytesPerSecond: config.telemetry.maxBytesPerSecond,
          maxBackoffMs: config.maxBackoffSeconds * 1000,
          linkUp,
          stats: shipStats,
        }),
        backupLoop(backups, { signal, tickMs: config.backup.tickSeconds * 1000 }),
        shipBackupsLoop(backups, {
          client: () => client,
          signal,
          tickMs: config.backup.ashoreTickSeconds * 1000,
          bytesPerSecond: config.backup.ashoreBytesPerSecond,
          packBytes: config.backup.ashorePackBytes,
        }),
      ]);
    } finally {
      consoleServer?.close();
      controlServer?.close();
      metricsServer?.close();
    }
  } finally {
    backups.close();
    store.close();
    log.info(restart ? { restart } : {}, 'agent stopped');
  }
  return restart ? { restart } : {};

  async function selfUpdateLoop(): Promise<void> {
    while (!signal.aborted) {
      try {
        selfUpdate.tick();
      } catch (err) {
        log.warn({ reason: errorMessage(err) }, 'self-update check failed');
      }
      await sleep(2_000, signal);
    }
  }

  async function syncLoop(linkUp: Wakeup): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let delay: number;
      try {
        if (config.pendingToken) {
          config = await completePendingEnrolment(config, opts.configPath);
          store.event('vessel.enrolled', { vesselId: config.vesselId });
          log.info({ vesselId: config.vesselId }, 'offline enrolment completed with the hub');
        }
        client ??= makeClient(config, store);
        const result = await syncOnce({
          client,
          store,
          vesselName: config.vesselName,
          rootPath: paths.root,
          root,
          log,
          docker,
          onHubTls: (b64, r) => applyHubTlsAnnouncement(config, r, b64, store, log),
        });
        root = result.root;
        if (failures > 0) {
          log.info({ after: failures }, 'hub reachable again');
          linkUp.ring();
        }
        if (result.changed || failures > 0) targetChanged.ring();
        failures = 0;
        try {
          selfUpdate.onSynced();
        } catch (err) {
          log.warn({ reason: errorMessage(err) }, 'self-update trial not committed');
        }
        // The hub's pollSeconds (per vessel or group) wins over agent.json.
        delay = pollDelayMs((result.desired?.settings?.pollSeconds ?? config.pollIntervalSeconds) * 1000);
      } catch (err) {
        failures++;
        noteFailure(store, log, err, failures);
        delay = backoffDelayMs(
          failures,
          Math.min(BACKOFF_BASE_MS, config.pollIntervalSeconds * 1000),
          config.maxBackoffSeconds * 1000,
        );
      }
      await sleep(delay, signal);
    }
  }

  /**
   * Apply the target from local state, apart from syncing: a download that runs for hours or fails on
   * every request neither stops the vessel from seeing a newer target nor holds up telemetry; a crew
   * `resume` works with the link down. After failures it backs off (capped, with jitter).
   */
  async function applyLoop(): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let delay = pollDelayMs(config.pollIntervalSeconds * 1000);
      try {
        const desired = store.get('desired');
        // The agent's own update runs beside the apps': one failing does not hold the other up.
        const [apps, agent] = await Promise.allSettled([
          controller.reconcile(withCarried(desired, store.get('carried') ?? [], config.vesselName)),
          selfUpdate.reconcile(agentTargetOf(desired), desired),
        ]);
        if (apps.status === 'rejected') throw apps.reason;
        if (agent.status === 'rejected') throw agent.reason;
        failures = 0;
      } catch (err) {
        failures++;
        if (err instanceof HubUnreachableError)
          log.info({ reason: errorMessage(err), failures }, 'release not fetched; hub unreachable');
        else log.warn({ reason: errorMessage(err), failures }, 'update not applied');
        delay = backoffDelayMs(
          failures,
          Math.min(BACKOFF_BASE_MS, config.pollIntervalSeconds * 1000),
          config.maxBackoffSeconds * 1000,
        );
      }
      // A new target (or the hub back) ends the wait, a backoff's too: the failure may be gone with it.
      await targetChanged.sleep(delay, signal);
    }
  }
}

async function watchLoop(controller: Controller, signal: AbortSignal, log: Logger): Promise<void> {
  while (!signal.aborted) {
    try {
      await controller.watchTick();
    } catch (err) {
      log.warn({ reason: errorMessage(err) }, 'watch window check failed');
    }
    await sleep(controller.watchTickMs, signal);
  }
}

async function driftLoop(controller: Controller, signal: AbortSignal, log: Logger, everyMs: number): Promise<void> {
  while (!signal.aborted) {
    await sleep(everyMs, signal);
    try {
      await controller.repairDrift();
    } catch (err) {
      log.warn({ reason: errorMessage(err) }, 'drift check failed');
    }
  }
}

function makeClient(config: AgentConfig, store: StateStore): HubClient {
  const key = loadPrivateKey(vesselPaths(config.dataDir).key);
  return new HubClient(
    config.hub,
    config.vesselId!,
    key,
    store.get('hub.skewMs') ?? 0,
    (skew) => store.set('hub.skewMs', skew),
    new LinkMeter(store.get('link.meter')),
    hubFetchFor(config),
    store.get('hub.compactAuth') ?? false,
    (compact) => store.set('hub.compactAuth', compact),
  );
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
