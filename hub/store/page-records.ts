import type { RolloutOutcome } from '../../shared/protocol/rollout-outcome.js';

/**
 * What the status page reads and keeps (hub/page/*): the fleet list as ONE query per page (filtered,
 * searched, sorted, paged, with the facts of each row joined in), the counts per state at the top, a
 * vessel's rollout history, and browser sessions. Every engine implements the same states:
 *
 * - revoked: revoked; never: not revoked, never heard from;
 * - online / stale / offline: last contact at or after `staleBefore`, between the two, before `offlineBefore`;
 * - failing: its last report flags failing (a service not running, an update failed or refused), or it
 *   failed in a rollout that is still open or halted and not superseded;
 * - updating: its last report flags a pending download, or the hub targets a release its last report
 *   does not show live (a target the vessel has not seen yet counts: "pending ashore") and it is not held,
 *   waiting for its window or failing;
 * - held / window: its last report flags a crew hold / a release waiting for its maintenance window.
 */
export const FLEET_STATES = [
  'online',
  'stale',
  'offline',
  'never',
  'revoked',
  'failing',
  'updating',
  'held',
  'window',
] as const;
export type FleetState = (typeof FLEET_STATES)[number];

export const FLEET_SORTS = ['name', 'contact', 'release', 'backlog', 'report'] as const;
export type FleetSort = (typeof FLEET_SORTS)[number];

export interface FleetQuery {
  /** Part of the name (plain text: % and _ are just characters). */
  search?: string;
  group?: string;
  state?: FleetState;
  /** A version live on the vessel (current release, or any app's live release in its report). */
  release?: string;
  /** Vessels in this rollout. */
  rollout?: number;
  sort: FleetSort;
  desc: boolean;
  limit: number;
  offset: number;
}

/** Contact older than these (hub ms) is stale, offline. */
export interface FleetClock {
  staleBefore: number;
  offlineBefore: number;
}

export interface FleetRow {
  id: string;
  name: string;
  groups: string[];
  enrolledAt: number | null;
  revokedAt: number | null;
  lastContact: number | null;
  currentRelease: string | null;
  agentVersion: string | null;
  /** The last status report as stored (read it with hub/page/facts.ts readReport). */
  status: unknown;
  statusReceivedAt: number | null;
  flags: string[];
  /** What the hub targets at the vessel, per app, by app. */
  desired: { app: string; version: string }[];
  /** A target the vessel's last report does not show live. */
  pendingAshore: boolean;
  telemetry: { backlog: number; dropped: number; lastBatchAt: number | null } | null;
  /** Its newest rollout: the rollout's state and its own wave and outcome in it. */
  rollout: {
    id: number;
    state: string;
    wave: number;
    outcome: RolloutOutcome;
    failure: string | null;
    reason: string | null;
  } | null;
  lastEvent: { type: string; at: number } | null;
}

export type FleetCounts = Record<FleetState | 'total', number>;

export interface VesselRolloutRow {
  rolloutId: number;
  app: string;
  version: string;
  rolloutState: string;
  wave: number;
  startedAt: number | null;
  outcome: RolloutOutcome;
  failure: string | null;
  reason: string | null;
  reportedAt: number | null;
  supersededBy: number | null;
}

export interface PageSession {
  tokenId: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface PageRecords {
  /** One page of the fleet: the rows and how many match in all. Sorted by the key, then name. */
  fleet(q: FleetQuery, clock: FleetClock): Promise<{ rows: FleetRow[]; total: number }>;
  /** Every vessel counted per state (a vessel counts in each state it is in), and the total. */
  counts(clock: FleetClock): Promise<FleetCounts>;
  /** The vessel's rollouts, newest first. */
  vesselRollouts(vesselId: string, limit: number): Promise<VesselRolloutRow[]>;
  /** A browser session, by the sha256 (hex) of its cookie secret; expired ones are forgotten in the same step. */
  createSession(idHash: string, s: PageSession, now: number): Promise<void>;
  /** Undefined when unknown or expired at `now`. */
  session(idHash: string, now: number): Promise<PageSession | undefined>;
  endSession(idHash: string): Promise<void>;
}
