import {
  ROLLOUT_OUTCOME_EVENT,
  rolloutOutcomeEventSchema,
  type FailureKind,
  type RolloutOutcome,
  type RolloutOutcomeEvent,
} from '../../shared/protocol/rollout-outcome.js';
import type { StateStore } from '../state-store.js';

export interface OutcomeDetail {
  failure?: FailureKind;
  reason?: string;
  progress?: { done: number; total: number };
  until?: string;
}

/**
 * The vessel's outcome for each app's target, as `rollout.outcome` events in the telemetry outbox (so a
 * ship offline reports them in order when it returns). An event goes out only when the outcome changes:
 * version, outcome, failure kind or the window's opening; the last one sent per app is kept on board.
 */
export function reportOutcome(
  store: Pick<StateStore, 'get' | 'set' | 'event'>,
  target: { app: string; version: string; rolloutId: number | null },
  outcome: RolloutOutcome,
  detail: OutcomeDetail = {},
): boolean {
  const sent = store.get('rollout.outcomes') ?? {};
  const last = sent[target.app];
  const same =
    last &&
    last.version === target.version &&
    last.outcome === outcome &&
    last.failure === detail.failure &&
    last.until === detail.until;
  if (same) return false;
  const event: RolloutOutcomeEvent = rolloutOutcomeEventSchema.parse({
    app: target.app,
    version: target.version,
    rolloutId: target.rolloutId,
    outcome,
    ...(detail.failure && { failure: detail.failure }),
    ...(detail.reason && { reason: detail.reason.slice(0, 512) }),
    ...(detail.progress && { progress: detail.progress }),
    ...(detail.until && { until: detail.until }),
  });
  store.event(ROLLOUT_OUTCOME_EVENT, event);
  store.set('rollout.outcomes', {
    ...sent,
    [target.app]: {
      version: target.version,
      outcome,
      ...(detail.failure && { failure: detail.failure }),
      ...(detail.until && { until: detail.until }),
      ...(detail.reason && { reason: detail.reason.slice(0, 512) }),
      ...(detail.progress && { progress: detail.progress }),
    },
  });
  return true;
}
