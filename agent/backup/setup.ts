import type { Logger } from 'pino';
import type { DockerEngine } from '../../shared/docker.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { ensureDir } from '../../shared/fs-atomic.js';
import { vesselNow } from '../clock.js';
import type { AgentConfig } from '../config.js';
import type { StateStore } from '../state-store.js';
import { backupDbPath, openBackupDb } from './backup-db.js';
import { backupDirOf } from './config.js';
import { boardLocator, routerRerouter, type BackupDeps } from './context.js';
import { routerPaths } from '../router/control.js';

/**
 * The backup side of a vessel, opened from its config and state store: by the agent for its schedule
 * loop, by crew commands for one run, verify or restore. Close it before the store.
 */
export function openBackups(opts: {
  config: AgentConfig;
  store: StateStore;
  docker: DockerEngine;
  root: () => TrustedRoot;
  log: Logger;
}): BackupDeps & { close(): void } {
  const { config, store } = opts;
  const db = openBackupDb(backupDbPath(config.dataDir));
  const dir = backupDirOf(config.dataDir, config.backup);
  ensureDir(dir);
  const { locate, services } = boardLocator(store.db, opts.root);
  return {
    vessel: config.vesselName,
    db,
    docker: opts.docker,
    root: opts.root,
    dir,
    diskMarginBytes: config.backup.diskMarginBytes,
    // The vessel clock corrected by the offset learnt from the hub, as requests to the hub are signed.
    now: () => vesselNow() + (store.get('hub.skewMs') ?? 0),
    event: (type, data) => store.event(type, data),
    log: opts.log,
    locate,
    services,
    linkCheap: () => store.get('link.cheap') ?? false,
    desired: () => store.get('desired'),
    reroute: routerRerouter(routerPaths(config.dataDir).socket, opts.docker),
    close: () => db.close(),
  };
}
