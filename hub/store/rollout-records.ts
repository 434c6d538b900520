import type { RolloutOutcome, RolloutOutcomeEvent } from '../../shared/protocol/rollout-outcome.js';
import type { VesselSettings } from '../../shared/protocol/bodies.js';
import type { WaveCounts, WaveRules } from '../rollout/waves.js';

/**
 * The stored side of rollouts in waves (DESIGN.md `## Rollouts in waves`): a rollout is a plan the hub
 * persists and executes, a row per (rollout, vessel) with its wave and outcome, a target per (vessel,
 * app), maintenance windows per vessel or group, and the signed rollback directives shore uploaded.
 * The engine (hub/rollout/engine.ts) decides; every step it takes is one atomic method here, guarded by
 * the state it expects (compare and set), so two hub processes ticking the same rollout cannot both
 * start a wave or both halt it.
 */

/** The audit record of an ops action (hub-store.ts AuditEntry; restated so the two files do not import each other). */
export interface AuditEntry {
  actor: string;
  action: string;
  detail: unknown;
}

export const ROLLOUT_STATES = ['active', 'paused', 'halted', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
/** States after which a rollout never moves again. */
export const FINAL_STATES: readonly RolloutState[] = ['completed', 'aborted'];

export interface RolloutRecord {
  id: number;
  releaseId: number;
  app: string;
  version: string;
  /** 'release': to a new release; 'rollback': back to an older one, with a signed directive. */
  kind: 'release' | 'rollback';
  target: string;
  state: RolloutState;
  rules: WaveRules;
  /** Vessels chosen to go first, by name, in the order given. */
  canary: string[];
  /** The highest wave started (0 = the canary wave). */
  currentWave: number;
  waveStartedAt: number | null;
  /** Why it halted (or was aborted), and the counts of the wave that decided it. */
  reason: string | null;
  counts: WaveCounts | null;
  directiveId: number | null;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  /** Vessels whose current target (for this app) comes from this rollout. */
  vessels: number;
}

export interface RolloutMember {
  vesselId: string;
  vessel: string;
  wave: number;
  /** When its wave started and the release became its target; null: not started (keeps its release). */
  startedAt: number | null;
  outcome: RolloutOutcome;
  failure: string | null;
  reason: string | null;
  progress: { done: number; total: number } | null;
  until: string | null;
  /** Hub time of the last outcome it reported. */
  reportedAt: number | null;
  /** A later rollout of the same app to this vessel won: its id. */
  supersededBy: number | null;
}

export interface VesselTarget {
  app: string;
  releaseId: number;
  rolloutId: number;
  setAt: number;
}

export interface NewDirective {
  app: string;
  version: string;
  counter: number;
  /** The signed envelope, byte for byte as the publisher made it. */
  envelope: Buffer;
  /** The payload's targets (already checked by the caller against the envelope). */
  targets: { all?: boolean; vessels?: string[]; groups?: string[] };
  expiresAt: number;
}

export interface StoredDirective extends NewDirective {
  id: number;
  createdAt: number;
}

export interface RolloutStart {
  releaseId: number;
  target: string;
  createdBy: string;
  /** Default: one wave of every vessel, any failure halts (DEFAULT_RULES). */
  rules?: WaveRules;
  /** Default: none chosen (a stable order). */
  canary?: string[];
  kind?: 'release' | 'rollback';
  /** A rollback rollout carries its directive: stored with it, in the same transaction. */
  directive?: NewDirective;
}

export interface RolloutRecords {
  /**
   * A rollout of a release to `target` (all, group:G, vessel:NAME): in one step it is created with every
   * unrevoked vessel it matches assigned a wave (assignWaves: canaries first, then a stable order), any
   * earlier rollout of the same app to those vessels records that it was superseded, and wave 0 starts
   * (its vessels' target for the app becomes the release, which they may then fetch). Errors:
   * 'bad_target', 'not_found' (no such vessel), 'empty_target', 'bad_rollout' (a canary outside the
   * target), 'stale_counter' (a directive counter not above the app's latest).
   */
  start(
    r: RolloutStart,
    now: number,
    audit?: AuditEntry,
  ): Promise<{ id: number; vessels: string[]; waves: string[][] }>;
  get(id: number): Promise<RolloutRecord | undefined>;
  /** Newest first. */
  list(q: { limit: number }): Promise<RolloutRecord[]>;
  /** Rollouts the engine still drives (active or paused), oldest first. */
  open(): Promise<RolloutRecord[]>;
  /** Its vessels by wave, then name. */
  members(id: number): Promise<RolloutMember[]>;
  /**
   * Starts `wave` if the rollout is active and its current wave is wave - 1: the wave's vessels (not
   * superseded) get the release as their target. Returns their names, or null when the guard failed.
   */
  startWave(id: number, wave: number, now: number, audit?: AuditEntry): Promise<string[] | null>;
  /** active -> halted or completed, with the reason and counts; false when it was not active. */
  finish(
    id: number,
    to: 'halted' | 'completed',
    detail: { reason: string | null; counts: WaveCounts | null },
    now: number,
    audit?: AuditEntry,
  ): Promise<boolean>;
  /** pause, resume, abort: 'bad_state' (409) when the rollout is not in one of `from`; 'not_found'. */
  transition(
    id: number,
    change: { from: readonly RolloutState[]; to: RolloutState; verb: string; reason?: string },
    now: number,
    audit?: AuditEntry,
  ): Promise<RolloutRecord>;
  /** The wave's started vessels without a finished outcome become failed with this reason; returns how many. */
  expire(id: number, wave: number, reason: string, now: number): Promise<number>;
  /**
   * Vessels that match an open rollout's target (all or a group) but joined after it started: added to
   * its last wave (started when that wave is). Returns their names.
   */
  enlist(id: number, now: number): Promise<string[]>;
  /**
   * A `rollout.outcome` event from a vessel, applied to its row in the rollout it names (or, without an
   * id, the newest rollout of that app and version it is in) unless an event after it (by epoch and
   * seq) was applied already. Returns the rollout id when a row changed.
   */
  recordOutcome(
    vesselId: string,
    ev: RolloutOutcomeEvent,
    order: { epoch: string; seq: number },
    now: number,
  ): Promise<number | undefined>;
  /** The release the vessel should run now, per app, by app. */
  targetsOf(vesselId: string): Promise<VesselTarget[]>;
  /** Whether the release was ever targeted at the vessel (what it may download). */
  mayFetch(vesselId: string, releaseId: number): Promise<boolean>;
  /** For metrics: rollouts per state. */
  stateCounts(): Promise<{ state: RolloutState; n: number }[]>;
  /** For metrics: vessels per outcome of the given rollouts; a vessel a later rollout took over is 'superseded'. */
  outcomeCounts(ids: number[]): Promise<{ rolloutId: number; outcome: RolloutOutcome | 'superseded'; n: number }[]>;
}

/** A maintenance window as set on the hub: scope is vessel:NAME or group:G. */
export interface WindowRecord {
  scope: string;
  spec: string;
  setAt: number;
  setBy: string;
}
export interface WindowRecords {
  /** Sets (or replaces) the window of a scope; the caller parsed the spec. */
  set(w: { scope: string; spec: string; setBy: string }, now: number, audit?: AuditEntry): Promise<void>;
  /** False when the scope had none (nothing changed, no audit record). */
  clear(scope: string, now: number, audit?: AuditEntry): Promise<boolean>;
  /** By scope. */
  list(): Promise<WindowRecord[]>;
  /** The window in force for a vessel: its own, else its first group's (by name) that has one. */
  forVessel(name: string, groups: readonly string[]): Promise<{ spec: string; source: string } | null>;
}

export interface DirectiveRecords {
  /** The counter the next directive of this app should carry (above every stored one). */
  nextCounter(app: string): Promise<number>;
  /** Unexpired directives at `now`, newest first, at most `limit`. */
  live(now: number, limit: number): Promise<StoredDirective[]>;
  get(id: number): Promise<StoredDirective | undefined>;
}

/**
 * Download settings the hub sets per vessel (vessel:NAME) or group (group:G); on board the hub's value
 * wins over agent.json's where both exist. Stored as the desired state carries them.
 */
export interface SettingsRecord {
  scope: string;
  settings: VesselSettings;
  setAt: number;
  setBy: string;
}
export interface SettingsRecords {
  /** Sets (or replaces) the settings of a scope; the caller checked them against the schema. */
  set(s: { scope: string; settings: VesselSettings; setBy: string }, now: number, audit?: AuditEntry): Promise<void>;
  /** False when the scope had none (nothing changed, no audit record). */
  clear(scope: string, now: number, audit?: AuditEntry): Promise<boolean>;
  /** By scope. */
  list(): Promise<SettingsRecord[]>;
  /**
   * The settings in force for a vessel, field by field: its own, else its groups' (by group name, the
   * first that sets the field). Undefined when no scope sets anything.
   */
  forVessel(name: string, groups: readonly string[]): Promise<VesselSettings | undefined>;
}
