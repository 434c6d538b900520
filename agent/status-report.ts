import type { DockerEngine } from '../shared/docker.js';
import type {
  AppStatus,
  LinkReport,
  PendingRelease,
  ServiceHealth,
  VesselStatusReport,
} from '../shared/protocol/bodies.js';
import type { TrustedRoot } from '../shared/trust/root.js';
import { errorMessage } from '../shared/errors.js';
import type { StateStore } from './state-store.js';
import { bootId } from './state-store.js';
import { AGENT_VERSION } from './version.js';
import { createBoardReleases } from './release/board-releases.js';
import { containerName } from './release/runtime.js';
import { targetsOf } from './release/targets.js';
import type { LinkMeter } from './link-meter.js';
import { downloadView, type DownloadProgress } from './release/transfer/progress.js';

/**
 * The status report a vessel sends ashore (v2): what its engine says of each live service, per app what
 * is live, what shore wants and why it is not live yet, the crew hold and the link meter. Everything here
 * is read from the engine and from local state as it is now; nothing is assumed.
 */
export async function buildStatusReport(
  store: StateStore,
  root: TrustedRoot,
  opts: { docker?: Pick<DockerEngine, 'inspectContainer'>; meter?: LinkMeter; now?: () => number } = {},
): Promise<VesselStatusReport> {
  const releases = createBoardReleases(store.db);
  const hold = store.get('crew.hold');
  const apps = appStatuses(store);
  const firstPending = apps.find((a) => a.pending)?.pending?.version ?? null;
  return {
    agentVersion: AGENT_VERSION,
    current: releases.serving()?.version ?? null,
    previous: store.get('release.previous') ?? null,
    pending: store.get('release.pending') ?? firstPending,
    held: hold !== undefined,
    rootVersion: root.version,
    backlog: store.backlog(),
    services: opts.docker ? await serviceStates(store, root, opts.docker) : [],
    bootId: bootId(),
    reportedAt: new Date(opts.now?.() ?? Date.now()).toISOString(),
    apps,
    hold: hold ? { app: hold.app ?? null, sequence: hold.sequence } : null,
    link: linkReport(store, opts.meter),
  };
}

/** Per app on board or targeted: live, desired, and the pending release with why it waits. */
export function appStatuses(store: StateStore): AppStatus[] {
  const releases = createBoardReleases(store.db);
  const targets = targetsOf(store.get('desired'));
  const hold = store.get('crew.hold');
  const sent = store.get('rollout.outcomes') ?? {};
  const names = [...new Set([...releases.apps(), ...targets.map((t) => t.app)])].sort();
  return names.map((app) => {
    const live = releases.serving(app)?.version ?? null;
    const desired = targets.find((t) => t.app === app)?.version ?? null;
    const held = hold !== undefined && (hold.app === undefined || hold.app === app);
    let pending: PendingRelease | null = null;
    if (desired !== null && desired !== live) {
      const o = sent[app]?.version === desired ? sent[app] : undefined;
      pending = { version: desired, state: held ? 'held' : 'queued' };
      if (o?.outcome === 'downloading') pending = { version: desired, state: 'downloading' };
      else if (o?.outcome === 'waiting-for-window')
        pending = { version: desired, state: 'waiting-for-window', ...(o.until && { until: o.until }) };
      else if (o?.outcome === 'held') pending = { version: desired, state: 'held' };
      else if (o?.outcome === 'failed')
        pending = { version: desired, state: o.failure === 'refused' ? 'refused' : 'failed' };
      if (o?.reason) pending.reason = o.reason.slice(0, 512);
      if (o?.progress && pending.state === 'downloading') pending.progress = o.progress;
      const dl = store.get('download.progress');
      if (pending.state === 'downloading' && dl?.app === app && dl.version === desired)
        pending.progress = reportedProgress(dl, Date.now());
    }
    return { app, live, desired, pending, held };
  });
}

/**
 * Each service of each live release as the engine sees its container: running (no health check),
 * healthy, unhealthy, starting, restarting, exited (with its code) or missing. An engine that cannot be
 * asked makes every service `unknown`, never `running`.
 */
export async function serviceStates(
  store: StateStore,
  root: TrustedRoot,
  docker: Pick<DockerEngine, 'inspectContainer'>,
): Promise<ServiceHealth[]> {
  const releases = createBoardReleases(store.db);
  const out: ServiceHealth[] = [];
  for (const r of releases.servingAll()) {
    let services: string[];
    try {
      services = Object.keys(releases.manifest(r.app, r.version, root).services).sort();
    } catch (err) {
      out.push({
        name: '*',
        app: r.app,
        release: r.version,
        state: 'unknown',
        detail: errorMessage(err).slice(0, 512),
      });
      continue;
    }
    for (const name of services) {
      const base = { name, app: r.app, release: r.version };
      try {
        const info = await docker.inspectContainer(containerName(r.app, name, r.version));
        if (!info) out.push({ ...base, state: 'missing', detail: 'no container' });
        else if (info.status === 'restarting')
          out.push({ ...base, state: 'restarting', restarts: info.restartCount, exitCode: info.exitCode });
        else if (!info.running)
          out.push({
            ...base,
            state: 'exited',
            exitCode: info.exitCode,
            restarts: info.restartCount,
            detail: `exited with code ${info.exitCode}`,
          });
        else {
          const state =
            info.health === 'healthy'
              ? 'healthy'
              : info.health === 'unhealthy'
                ? 'unhealthy'
                : info.health === 'starting'
                  ? 'starting'
                  : 'running';
          out.push({ ...base, state, restarts: info.restartCount });
        }
      } catch (err) {
        out.push({ ...base, state: 'unknown', detail: `engine not reachable: ${errorMessage(err)}`.slice(0, 512) });
      }
    }
  }
  return out;
}

function linkReport(store: StateStore, meter: LinkMeter | undefined): LinkReport {
  const m = meter?.summary() ?? { bytesUp24h: 0, bytesDown24h: 0, requests24h: 0, failures24h: 0, rttMs: null };
  return {
    state: store.get('link.state') ?? 'unknown',
    lastOkAt: store.get('link.lastOk') ?? null,
    lastError: store.get('link.lastError')?.slice(0, 512) ?? null,
    ...m,
  };
}

/**
 * What makes a report worth sending before the heartbeat is due: everything but its time and the link
 * meter's counters (they change on every poll; the heartbeat carries them).
 */
export function reportFingerprintPart(r: VesselStatusReport): unknown {
  const { reportedAt: _t, link, apps, ...rest } = r;
  // A download's rate and time left change with every look: a report goes when its tenth changes.
  const steady = apps?.map((a) =>
    a.pending?.progress
      ? {
          ...a,
          pending: { ...a.pending, progress: { done: a.pending.progress.done, total: a.pending.progress.total } },
        }
      : a,
  );
  return { ...rest, apps: steady, link: link && { state: link.state } };
}

/**
 * A download's figures for the hub, done rounded down to a tenth of the total (a report per tenth, not
 * per poll); rate and time left only while it moves.
 */
export function reportedProgress(dl: DownloadProgress, now: number): NonNullable<PendingRelease['progress']> {
  const v = downloadView(dl, now);
  const tenth = Math.max(1, Math.ceil(dl.total / 10));
  const done = dl.done >= dl.total ? dl.total : Math.floor(dl.done / tenth) * tenth;
  return {
    done,
    total: dl.total,
    ...(v.bytesPerSecond > 0 && { bytesPerSecond: Math.round(v.bytesPerSecond) }),
    ...(v.etaSeconds !== null && v.bytesPerSecond > 0 && { etaSeconds: Math.ceil(v.etaSeconds) }),
  };
}
