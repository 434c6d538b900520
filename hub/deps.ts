import type { Logger } from 'pino';
import type { HubStore } from './store/hub-store.js';
import type { HubMetrics } from './metrics.js';
import type { RolloutEngine } from './rollout/engine.js';
import type * as limitValues from './limits.js';
import type { HubTlsState } from './tls.js';

/**
 * What the hub's routes are given: the store (the one asynchronous interface to everything the hub keeps),
 * metrics, limits and clock. Its own module, so that routes import it without importing the app that
 * registers them (data flows one way: app -> routes -> store).
 */
export interface HubDeps {
  store: HubStore;
  metrics: HubMetrics;
  /** Carries out the rollouts the store keeps (waves, halts), on a timer and as outcomes arrive. */
  rollouts: RolloutEngine;
  limits: HubLimits;
  now: () => number;
  /** The TLS the hub serves now (changes on SIGHUP); undefined: plain HTTP (behind a TLS proxy, or a test). */
  tls: () => HubTlsState | undefined;
}

/** Every limit of limits.ts, by name; tests override a few. */
export type HubLimits = { [K in keyof typeof limitValues]: number };

export interface HubOptions {
  /** The embedded store's directory (SQLite database and chunk folder), used when `store` is not given. */
  dataDir: string;
  /** Another store (tests, PostgreSQL); the hub closes it when it closes. */
  store?: HubStore;
  logger?: Logger;
  /** Overrides for tests (short timeouts); production uses the named defaults in limits.ts. */
  limits?: Partial<HubLimits>;
  now?: () => number;
  /** The rollout engine's tick (default ROLLOUT_TICK_MS); 0: no timer (tests that tick by hand). */
  rolloutTickMs?: number;
  /** Serve HTTPS: the loaded certificate and the session ticket key (see tls.ts). */
  tls?: { state: HubTlsState; ticketKeys: Buffer };
  /** Also one metric series per vessel (backlog, drops): off by default, for fleets of thousands. */
  perVesselMetrics?: boolean;
}
