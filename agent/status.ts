import { existsSync } from 'node:fs';
import { createDockerEngine } from '../shared/docker.js';
import { vesselPaths, type AgentConfig } from './config.js';
import { loadTrustedRoot } from './enrol.js';
import { openStateStore } from './state-store.js';
import type { LinkState, ReleaseResult } from './state-schema.js';
import { createBoardReleases } from './release/board-releases.js';
import { createJournal } from './release/journal.js';
import { serviceStates } from './status-report.js';
import { effectivePolicy, type TransferPolicy } from './release/transfer-policy.js';
import { targetsOf } from './release/targets.js';
import { switchWindow } from './release/switch-window.js';
import { correctedNow } from './clock.js';
import { formatBackupStatus, readBackupStatus, type BackupStatus } from './backup/backup-status.js';

import { linkSecurity, type LinkSecurity } from './hub-link.js';
import { downloadView, type DownloadView } from './release/transfer/progress.js';
import { formatBytes, formatSeconds } from '../shared/progress.js';
import { consoleFingerprint } from './crew/console-tls.js';

/** What `tender status` and the local console show: all from local state, no hub needed. */
export interface StatusView {
  vessel: string;
  hub: string;
  /** Whether the link to the hub is encrypted and how the hub is trusted. */
  hubLink: LinkSecurity;
  enrolment: 'complete' | 'pending first contact';
  release: {
    current: string | null;
    previous: string | null;
    pending: string | null;
    held: boolean;
    desired: string | null;
  };
  link: { state: LinkState; lastOk: string | null; lastError: string | null };
  lastSync: string | null;
  backlog: number;
  rootVersion: number;
  services: { name: string; state: string; detail?: string }[];
  lastResult: ReleaseResult | null;
  /** Every app on board or targeted: what serves and what shore wants. */
  apps: { app: string; current: string | null; desired: string | null; held: boolean }[];
  /** The maintenance window for switches (from the hub, kept on board), on the corrected clock. */
  window: { spec: string; source: string; open: boolean; until: string | null } | null;
  /** The download policy in force and where each setting comes from (the hub's wins over agent.json). */
  downloads: TransferPolicy;
  lastUpdate: { kind: string; from: string | null; to: string; state: string; reason: string | null } | null;
  backups: BackupStatus;
  /** The release download under way (or cut), while that release is not live: null when none. */
  download: DownloadView | null;
  /** The crew console: where, and with TLS the fingerprint of its certificate (null until it first ran). */
  console: { url: string; tls: boolean; fingerprint: string | null } | null;
}

export async function buildStatus(config: AgentConfig): Promise<StatusView> {
  const paths = vesselPaths(config.dataDir);
  const root = loadTrustedRoot(config.dataDir);
  if (!existsSync(paths.db)) {
    return {
      vessel: config.vesselName,
      hub: config.hub,
      hubLink: linkSecurity(config),
      enrolment: config.pendingToken ? 'pending first contact' : 'complete',
      release: { current: null, previous: null, pending: null, held: false, desired: null },
      link: { state: 'unknown', lastOk: null, lastError: null },
      lastSync: null,
      backlog: 0,
      rootVersion: root.version,
      services: [],
      lastResult: null,
      lastUpdate: null,
      backups: readBackupStatus(config.dataDir),
      apps: [],
      window: null,
      downloads: effectivePolicy(config, undefined),
      download: null,
      console: consoleView(config),
    };
  }
  const store = openStateStore(paths, { outboxCapBytes: config.telemetry.outboxCapBytes });
  try {
    const releases = createBoardReleases(store.db);
    const services = (await serviceStates(store, root, createDockerEngine())).map((x) => ({
      name: releases.apps().length > 1 && x.app ? `${x.app}/${x.name}` : x.name,
      state: x.state,
      detail: x.detail ?? (x.restarts ? `${x.restarts} restarts` : undefined),
    }));
    const last = createJournal(store.db).recent(1)[0];
    const desired = store.get('desired');
    const targets = targetsOf(desired);
    const hold = store.get('crew.hold');
    const appNames = [...new Set([...releases.apps(), ...targets.map((t) => t.app)])];
    const w = switchWindow(desired, correctedNow(store.get('hub.skewMs')));
    const dl = store.get('download.progress');
    return {
      vessel: config.vesselName,
      hub: config.hub,
      hubLink: linkSecurity(config),
      enrolment: config.pendingToken ? 'pending first contact' : 'complete',
      release: {
        current: releases.serving()?.version ?? null,
        previous: store.get('release.previous') ?? null,
        pending: store.get('release.pending') ?? null,
        held: store.get('crew.hold') !== undefined,
        desired: targets[0]?.version ?? null,
      },
      link: {
        state: store.get('link.state') ?? 'unknown',
        lastOk: store.get('link.lastOk') ?? null,
        lastError: store.get('link.lastError') ?? null,
      },
      lastSync: store.get('sync.lastAt') ?? null,
      backlog: store.backlog(),
      rootVersion: root.version,
      services,
      lastResult: store.get('release.lastResult') ?? null,
      lastUpdate: last
        ? { kind: last.kind, from: last.from, to: last.to, state: last.state, reason: last.reason }
        : null,
      backups: readBackupStatus(config.dataDir),
      apps: appNames.map((app) => ({
        app,
        current: releases.serving(app)?.version ?? null,
        desired: targets.find((t) => t.app === app)?.version ?? null,
        held: hold !== undefined && (hold.app === undefined || hold.app === app),
      })),
      window: desired?.window
        ? {
            spec: desired.window.spec,
            source: desired.window.source,
            open: w.open,
            until: w.open ? null : w.until,
          }
        : null,
      downloads: effectivePolicy(config, desired?.settings),
      download: dl && releases.serving(dl.app)?.version !== dl.version ? downloadView(dl, Date.now()) : null,
      console: consoleView(config),
    };
  } finally {
    store.close();
  }
}

export function formatStatus(s: StatusView): string {
  const linkError = s.link.state !== 'up' && s.link.lastError ? ` (${s.link.lastError})` : '';
  const u = s.lastUpdate;
  const update = u
    ? `${u.kind} ${u.from ?? 'none'} -> ${u.to}: ${u.state}${u.reason ? ` (${u.reason})` : ''}`
    : 'none yet';
  const app = (a: StatusView['apps'][number]) =>
    `${a.app} ${a.current ?? 'none'}${a.desired && a.desired !== a.current ? ` -> ${a.desired}` : ''}` +
    (a.held ? ' (held)' : '');
  const w = s.window;
  const window = w
    ? `${w.spec} (${w.source}): ${w.open ? 'open' : `closed, waiting for window until ${w.until ?? 'unknown'}`}`
    : 'none (switch any time)';
  const services = s.services.length
    ? s.services.map((x) => `${x.name}: ${x.state}${x.detail ? ` (${x.detail})` : ''}`).join(', ')
    : 'none deployed';
  return [
    `vessel     ${s.vessel}${s.enrolment === 'complete' ? '' : ` (${s.enrolment})`}`,
    `release    current ${s.release.current ?? 'none'}, previous ` +
      `${s.release.previous ?? 'none'}, pending ` +
      `${s.release.pending ?? 'none'}${s.release.held ? ' (held by crew)' : ''}`,
    ...(s.download ? [`download   ${formatDownload(s.download)}`] : []),
    `link       ${s.link.state}${s.link.lastOk ? `, last ok ${s.link.lastOk}` : ''}${linkError}`,
    `last sync  ${s.lastSync ?? 'never'}`,
    `update     ${update}`,
    ...(s.apps.length > 1 ? [`apps       ${s.apps.map(app).join(', ')}`] : []),
    `window     ${window}`,
    `downloads  ${formatPolicy(s.downloads)}`,
    `backlog    ${s.backlog} records`,
    `trust      root v${s.rootVersion}`,
    `services   ${services}`,
    `hub        ${s.hub} (${s.hubLink.note})`,
    ...(s.console ? [`console    ${formatConsole(s.console)}`] : []),
    ...formatBackupStatus(s.backups),
  ].join('\n');
}

function consoleView(config: AgentConfig): StatusView['console'] {
  const c = config.console;
  if (!c) return null;
  return {
    url: `${c.tls ? 'https' : 'http'}://${c.listen}/`,
    tls: c.tls,
    fingerprint: c.tls ? consoleFingerprint(config.dataDir) : null,
  };
}

function formatConsole(c: NonNullable<StatusView['console']>): string {
  if (!c.tls) return `${c.url} (not encrypted: the crew password crosses the LAN in clear; --console-tls)`;
  return `${c.url} (TLS, certificate ${c.fingerprint ?? "made at the agent's next start"})`;
}

/** "sms@1.0.2: 45 % (4.5 MB of 10.0 MB), 12.3 kB/s, about 6 min 10 s left", or since when it stands. */
export function formatDownload(d: DownloadView): string {
  const head = `${d.release}: ${d.percent} % (${formatBytes(d.done)} of ${formatBytes(d.total)})`;
  if (d.staleSince) return `${head}, not moving since ${d.staleSince.slice(0, 19).replace('T', ' ')} UTC`;
  const left = d.etaSeconds === null ? '' : `, about ${formatSeconds(d.etaSeconds)} left`;
  return `${head}, ${formatBytes(Math.round(d.bytesPerSecond))}/s${left}`;
}

function formatPolicy(p: TransferPolicy): string {
  const windows = p.downloadWindows.length ? p.downloadWindows.join(', ') : 'any time';
  return [
    `windows ${windows} (from ${p.from.downloadWindows})`,
    `only when cheap ${p.onlyWhenCheap ? 'yes' : 'no'} (from ${p.from.onlyWhenCheap})`,
    `cap ${p.bytesPerSecond ? `${p.bytesPerSecond} B/s` : 'none'} (from ${p.from.bytesPerSecond})`,
  ].join('; ');
}
