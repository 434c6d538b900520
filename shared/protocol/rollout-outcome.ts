import { z } from 'zod';

/**
 * A vessel's outcome in a rollout, as the vessel reports it in its telemetry events (so a ship that was
 * offline reports them in order when it returns) and as the hub's rollout engine counts it.
 *
 * - pending: targeted, nothing reported yet
 * - waiting-for-window: on board (or downloading), the switch waits for the maintenance window
 * - downloading: fetching the release's chunks
 * - installed-healthy: live and through its watch window
 * - failed: gate failed, rolled back by itself, crashed after the flip, refused, or the wave's deadline passed
 * - held: the crew holds another release on board
 */
export const ROLLOUT_OUTCOMES = [
  'pending',
  'waiting-for-window',
  'downloading',
  'installed-healthy',
  'failed',
  'held',
] as const;
export type RolloutOutcome = (typeof ROLLOUT_OUTCOMES)[number];

/** Outcomes after which a vessel has finished its part of a wave. */
export const FINISHED_OUTCOMES: readonly RolloutOutcome[] = ['installed-healthy', 'failed', 'held'];

/** Why a vessel failed, as a short machine-readable kind beside the human reason. */
export const FAILURE_KINDS = [
  'gate-failed',
  'rolled-back',
  'crashed-after-flip',
  'refused',
  'deadline-passed',
  'transfer-failed',
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/** The event a vessel queues each time its outcome for a release changes (type `rollout.outcome`). */
export const ROLLOUT_OUTCOME_EVENT = 'rollout.outcome';
export const rolloutOutcomeEventSchema = z.strictObject({
  app: z.string().max(64),
  version: z.string().max(64),
  rolloutId: z.number().int().min(0).nullable(),
  outcome: z.enum(ROLLOUT_OUTCOMES),
  failure: z.enum(FAILURE_KINDS).optional(),
  reason: z.string().max(512).optional(),
  /** While downloading: bytes received of the bytes needed. */
  progress: z.strictObject({ done: z.number().int().min(0), total: z.number().int().min(0) }).optional(),
  /** While waiting for the window: when it opens (ISO time, vessel's corrected clock). */
  until: z.string().max(40).optional(),
});
export type RolloutOutcomeEvent = z.infer<typeof rolloutOutcomeEventSchema>;
