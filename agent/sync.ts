import type { Logger } from 'pino';
import type { DesiredState } from '../shared/protocol/bodies.js';
import type { DockerEngine } from '../shared/docker.js';
import { walkRootChain, type TrustedRoot } from '../shared/trust/root.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { canonicalJson } from '../shared/trust/canonical-json.js';
import type { StateStore } from './state-store.js';
import type { HubClient } from './hub-client.js';
import type { LinkMeter } from './link-meter.js';
import { buildStatusReport, reportFingerprintPart } from './status-report.js';
import { errorMessage } from '../shared/errors.js';
import { desiredProblem, targetsOf } from './release/targets.js';
import { createBoardReleases } from './release/board-releases.js';

// Even when nothing changes, tell shore we are alive and what we run this often (the hub's
// statusHeartbeatSeconds setting wins).
const STATUS_REPORT_EVERY_MS = 15 * 60 * 1000;

export interface SyncDeps {
  client: HubClient;
  store: StateStore;
  vesselName: string;
  rootPath: string;
  root: TrustedRoot;
  log: Logger;
  /** The engine the live services are asked about (absent: the report lists none). */
  docker?: Pick<DockerEngine, 'inspectContainer'>;
  /** The link meter (default: the client's). */
  meter?: LinkMeter;
  /** The clock the heartbeat is timed on (benchmarks inject one). */
  now?: () => number;
  /** Told of the signed hub-tls announcement in the desired state, under the newest trusted root. */
  onHubTls?: (base64: string, root: TrustedRoot) => void;
}

export interface SyncResult {
  changed: boolean;
  desired: DesiredState | undefined;
  root: TrustedRoot;
}

// How long the report of a new target waits for the download to take the warm connection first: a
// target that needs no download (images on board, settings only) reports after this.
const REPORT_AFTER_CHANGE_WAIT_MS = 2_000;

/**
 * One exchange with the hub: desired state (If-None-Match, so an unchanged state costs a 304), root
 * rotations when the hub has a newer root, and a status report when ours changed or is due.
 */
export async function syncOnce(deps: SyncDeps): Promise<SyncResult> {
  const { client, store, vesselName, log } = deps;
  let desired = store.get('desired');
  // A target that no longer reads (it did not fit its schema) is asked for again in full.
  const fresh = await client.getDesired(vesselName, (desired && store.get('desired.etag')) || undefined);
  let changed = false;
  const problem = fresh && desiredProblem(fresh.state, vesselName);
  if (fresh && problem) {
    // Not for this vessel, or a name that must never reach a path: kept out, the last good target stays.
    if (store.get('desired.refused') !== problem) {
      store.event('desired.refused', { reason: problem });
      store.set('desired.refused', problem);
      log.warn({ reason: problem }, 'desired state from the hub refused');
    }
  } else if (fresh) {
    desired = fresh.state;
    changed = true;
    store.setMany({ desired, 'desired.etag': fresh.etag, 'desired.refused': null });
    log.info(
      { release: desired.release, apps: desired.apps?.map((a) => `${a.app}@${a.version}`) },
      'desired state changed',
    );
  }
  let root = deps.root;
  if (desired && desired.rootVersion > root.version) root = await updateRoot(deps);
  if (desired?.hubTls) deps.onHubTls?.(desired.hubTls, root);
  store.setMany({
    'link.state': 'up',
    'link.lastOk': new Date().toISOString(),
    'sync.lastAt': new Date().toISOString(),
    'link.lastError': null,
  });
  if (client.meter) store.set('link.meter', client.meter.snapshot());
  if (changed) {
    // A new target waits for nothing: the report travels alongside the download instead of costing it a
    // round trip, and, when a release is to be fetched, goes once the download's first request has taken
    // the warm connection (else the report takes it and the download pays a new handshake). Not sent now,
    // it is sent with the next sync (its fingerprint is stored only on success).
    const board = createBoardReleases(store.db);
    const fetching = targetsOf(desired).some((t) => !board.get(t.app, t.version));
    const ready = fetching ? client.nextPackRequest(REPORT_AFTER_CHANGE_WAIT_MS) : Promise.resolve();
    const report = ready.then(() => reportStatus(deps, root, desired));
    report.catch((err) =>
      log.debug({ reason: errorMessage(err) }, 'status report not sent; it goes with the next sync'),
    );
  } else await reportStatus(deps, root, desired);
  return { changed, desired, root };
}

async function updateRoot(deps: SyncDeps): Promise<TrustedRoot> {
  const { client, store, log } = deps;
  const from = deps.root.version;
  const { root, steps } = await walkRootChain(deps.root, (version) => client.getRoot(version));
  if (steps.length > 0) {
    // Only the newest verified root is kept: old or new on disk, never torn.
    writeFileAtomic(deps.rootPath, steps[steps.length - 1]!, 0o644);
    store.event('root.rotated', { from, to: root.version });
    log.info({ from, to: root.version }, 'trusted root rotated');
  }
  return root;
}

async function reportStatus(deps: SyncDeps, root: TrustedRoot, desired: DesiredState | undefined): Promise<void> {
  const { client, store, vesselName } = deps;
  const meter = deps.meter ?? client.meter;
  const now = deps.now ?? Date.now;
  const status = await buildStatusReport(store, root, { docker: deps.docker, meter, now });
  const fingerprint = canonicalJson(reportFingerprintPart(status));
  const last = store.get('status.lastReport');
  const heartbeatMs = (desired?.settings?.statusHeartbeatSeconds ?? 0) * 1000 || STATUS_REPORT_EVERY_MS;
  if (last && last.fingerprint === fingerprint && now() - last.at < heartbeatMs) return;
  const at = now();
  await client.postStatus(vesselName, status);
  store.set('status.lastReport', { fingerprint, at });
}
