import type { Logger } from 'pino';
import { TenderError } from '../../shared/errors.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { AgentConfig } from '../config.js';
import { HubUnreachableError, type HubClient } from '../hub-client.js';
import type { StateStore } from '../state-store.js';
import { fetchRelease } from './transfer/fetch-loop.js';
import { fetchManifestResumable } from './manifest-fetch.js';
import { stageRelease } from './stage.js';
import { effectivePolicy, transferAllowed } from './transfer-policy.js';
import { correctedNow } from '../clock.js';
import { RateMeter, type TransferCounts } from './transfer/progress.js';

/** Not an error: the policy says not now (download window, metered link). */
export class TransferDeferred extends TenderError {}

/**
 * Where the controller gets a release from: its signed manifest, and its images (fetch → verify → stage).
 * The controller verifies what this returns; with no hub connection yet, both throw HubUnreachableError.
 */
export interface InstallSource {
  /** The signed manifest of a release targeted at this vessel (envelope bytes, not yet verified). */
  fetchManifest(app: string, version: string): Promise<Buffer>;
  /** Bring the release's missing images on board: fetch chunks, verify each, load into the engine. */
  transfer(m: ReleaseManifest): Promise<void>;
}

export interface InstallSourceDeps {
  client: () => HubClient | undefined;
  store: Pick<StateStore, 'get' | 'set'>;
  docker: DockerEngine;
  chunks: ChunkStore;
  config: Pick<
    AgentConfig,
    | 'vesselName'
    | 'dataDir'
    | 'downloadWindows'
    | 'downloadOnlyWhenCheap'
    | 'releaseBytesPerSecond'
    | 'diskMarginBytes'
    | 'stallSeconds'
  >;
  log: Logger;
  signal: AbortSignal;
}

/** Releases from the hub, under the download policy (windows, cheap link, bandwidth cap, disk margin). */
export function createInstallSource(deps: InstallSourceDeps): InstallSource {
  const { config, log } = deps;
  const fetchDir = `${config.dataDir}/fetch`;
  const connected = (): HubClient => {
    const client = deps.client();
    if (!client) throw new HubUnreachableError('not connected to the hub yet');
    return client;
  };

  return {
    async fetchManifest(app, version) {
      const client = connected();
      return fetchManifestResumable(client, config.vesselName, { app, version }, fetchDir);
    },

    async transfer(m) {
      const client = connected();
      // The hub's settings for this vessel win over agent.json's; windows are read on the corrected clock.
      const policy = effectivePolicy(config, deps.store.get('desired')?.settings);
      const blocked = transferAllowed(
        policy,
        deps.store.get('link.cheap') ?? false,
        new Date(correctedNow(deps.store.get('hub.skewMs'))),
      );
      if (blocked) throw new TransferDeferred(blocked);
      const t0 = Date.now();
      const stats = await fetchRelease(
        {
          client,
          vesselName: config.vesselName,
          chunks: deps.chunks,
          dir: fetchDir,
          log,
          signal: deps.signal,
          bytesPerSecond: policy.bytesPerSecond,
          diskMarginBytes: config.diskMarginBytes,
          stall: { ms: config.stallSeconds * 1000 },
          onProgress: progressRecorder(deps.store, m, t0),
        },
        m,
      );
      // Done: nothing is downloading. A failed download keeps its last figures (shown as not moving).
      deps.store.set('download.progress', null);
      log.info({ release: m.version, ...stats, seconds: (Date.now() - t0) / 1000 }, 'release chunks on board');
      const loaded = await stageRelease(deps.docker, m, deps.chunks);
      log.info({ release: m.version, images: loaded.length }, 'images loaded into the engine');
    },
  };
}

/** Keep the download's figures in the agent's state, for `tender status`, the console and the report. */
function progressRecorder(
  store: Pick<StateStore, 'set'>,
  m: ReleaseManifest,
  startedAt: number,
): (c: TransferCounts) => void {
  const rate = new RateMeter();
  return (c) => {
    const at = Date.now();
    store.set('download.progress', {
      app: m.app,
      version: m.version,
      ...c,
      bytesPerSecond: rate.sample(c.linkBytes, at),
      startedAt,
      at,
    });
  };
}
