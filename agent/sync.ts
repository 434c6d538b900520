import type { Logger } from 'pino';
import type { DesiredState, VesselStatusReport } from '../shared/protocol/bodies.js';
import { walkRootChain, type TrustedRoot } from '../shared/trust/root.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { canonicalJson } from '../shared/trust/canonical-json.js';
import { bootId, type StateStore } from './state-store.js';
import type { HubClient } from './hub-client.js';
import { AGENT_VERSION } from './version.js';
import { createBoardReleases } from './release/board-releases.js';
import { errorMessage } from '../shared/errors.js';
import { desiredProblem } from './release/targets.js';

// Even when nothing changes, tell shore we are alive and what we run this often.
const STATUS_REPORT_EVERY_MS = 15 * 60 * 1000;

export interface SyncDeps {
  client: HubClient;
  store: StateStore;
  vesselName: string;
  rootPath: string;
  root: TrustedRoot;
  log: Logger;
}

export interface SyncResult {
  changed: boolean;
  desired: DesiredState | undefined;
  root: TrustedRoot;
}

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
  store.setMany({
    'link.state': 'up',
    'link.lastOk': new Date().toISOString(),
    'sync.lastAt': new Date().toISOString(),
    'link.lastError': null,
  });
  const report = reportStatus(deps, root);
  if (changed) {
    // A new target waits for nothing: the report travels alongside the download instead of costing it a
    // round trip. Not sent now, it is sent with the next sync (its fingerprint is stored only on success).
    report.catch((err) =>
      log.debug({ reason: errorMessage(err) }, 'status report not sent; it goes with the next sync'),
    );
  } else await report;
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

export function currentStatus(store: StateStore, root: TrustedRoot): VesselStatusReport {
  return {
    agentVersion: AGENT_VERSION,
    current: createBoardReleases(store.db).serving()?.version ?? null,
    previous: store.get('release.previous') ?? null,
    pending: store.get('release.pending') ?? null,
    held: store.get('crew.hold') !== undefined,
    rootVersion: root.version,
    backlog: store.backlog(),
    services: [],
    bootId: bootId(),
    reportedAt: new Date().toISOString(),
  };
}

async function reportStatus(deps: SyncDeps, root: TrustedRoot): Promise<void> {
  const { client, store, vesselName } = deps;
  const status = currentStatus(store, root);
  const { reportedAt: _ignored, ...comparable } = status;
  const fingerprint = canonicalJson(comparable);
  const last = store.get('status.lastReport');
  if (last && last.fingerprint === fingerprint && Date.now() - last.at < STATUS_REPORT_EVERY_MS) return;
  await client.postStatus(vesselName, status);
  store.set('status.lastReport', { fingerprint, at: Date.now() });
}
