import type { Logger } from 'pino';
import type { Db } from '../shared/sqlite.js';
import type { ChunkStore } from '../shared/content/chunk-store.js';
import type { EnrolmentStore } from './store/enrolment-store.js';
import type { OpsTokenStore } from './store/ops-token-store.js';
import type { ReleaseStore } from './store/release-store.js';
import type { RolloutStore } from './store/rollout-store.js';
import type { RootStore } from './store/root-store.js';
import type { TelemetryStore } from './store/telemetry-store.js';
import type { VesselStore } from './store/vessel-store.js';
import type { HubMetrics } from './metrics.js';
import type * as limitValues from './limits.js';

/**
 * What the hub's routes are given: its stores, metrics, limits and clock. Its own module, so that routes
 * import it without importing the app that registers them (data flows one way: app -> routes -> stores).
 */
export interface HubDeps {
  db: Db;
  vessels: VesselStore;
  opsTokens: OpsTokenStore;
  enrolments: EnrolmentStore;
  roots: RootStore;
  metrics: HubMetrics;
  releases: ReleaseStore;
  telemetry: TelemetryStore;
  chunks: ChunkStore;
  rollouts: RolloutStore;
  limits: HubLimits;
  now: () => number;
}

/** Every limit of limits.ts, by name; tests override a few. */
export type HubLimits = { [K in keyof typeof limitValues]: number };

export interface HubOptions {
  dataDir: string;
  logger?: Logger;
  /** Overrides for tests (short timeouts); production uses the named defaults in limits.ts. */
  limits?: Partial<HubLimits>;
  now?: () => number;
}
