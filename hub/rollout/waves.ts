import { createHash } from 'node:crypto';
import { TenderError } from '../../shared/errors.js';
import type { RolloutOutcome } from '../../shared/protocol/rollout-outcome.js';

/**
 * Rollouts in waves, as data: which vessels go in which wave, and what the rollout should do next given
 * the outcomes reported so far. Pure functions, so the rules of DESIGN.md "Rollouts in waves" are tested
 * as tables; the engine (engine.ts) persists the plan and carries out the decisions.
 */
export class RolloutRuleError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_rollout', 2, 400);
  }
}

export type Threshold = { kind: 'min-success'; percent: number } | { kind: 'max-failures'; percent: number };

export interface WaveRules {
  /** Cumulative share of the targeted vessels per wave, increasing, ending at 100. */
  waves: number[];
  threshold: Threshold;
  /** A wave passes only when at least this many of its vessels finished (at least 1). */
  minDone: number;
  /** A wave is done once this share of its vessels finished (100: all of them). */
  quorumPercent: number;
  /** After this long a wave's unfinished vessels count as failed ("deadline passed"); null: no deadline. */
  deadlineMs: number | null;
}

// Without --waves a rollout is one wave, as before waves existed; with waves and no threshold, any
// failure halts: a canary is there to stop a bad release, not to be outvoted.
export const DEFAULT_RULES: WaveRules = {
  waves: [100],
  threshold: { kind: 'min-success', percent: 100 },
  minDone: 1,
  quorumPercent: 100,
  deadlineMs: null,
};

/** Check rules a person typed; the message names the flag. */
export function checkRules(r: WaveRules): WaveRules {
  if (r.waves.length === 0 || r.waves.length > 20) throw new RolloutRuleError('--waves needs 1 to 20 percentages');
  r.waves.forEach((p, i) => {
    if (!Number.isFinite(p) || p <= 0 || p > 100) throw new RolloutRuleError(`--waves: ${p}% is outside 1-100%`);
    if (i > 0 && p <= r.waves[i - 1]!)
      throw new RolloutRuleError(`--waves must increase: ${r.waves[i - 1]}% then ${p}%`);
  });
  if (r.waves[r.waves.length - 1] !== 100)
    throw new RolloutRuleError(`--waves must end at 100%, not ${r.waves[r.waves.length - 1]}%`);
  const t = r.threshold;
  if (!Number.isFinite(t.percent) || t.percent < 0 || t.percent > 100)
    throw new RolloutRuleError(`--${t.kind}: ${t.percent}% is outside 0-100%`);
  if (!Number.isInteger(r.minDone) || r.minDone < 1 || r.minDone > 1_000_000)
    throw new RolloutRuleError(`--min-done must be a whole number from 1, got ${r.minDone}`);
  if (!Number.isFinite(r.quorumPercent) || r.quorumPercent <= 0 || r.quorumPercent > 100)
    throw new RolloutRuleError(`--wave-quorum: ${r.quorumPercent}% is outside 1-100%`);
  if (r.deadlineMs !== null && (!Number.isInteger(r.deadlineMs) || r.deadlineMs < 60_000))
    throw new RolloutRuleError('--wave-deadline must be at least 1m');
  return r;
}

/** "99.5%" or "99.5" → 99.5; the message names the flag. */
export function parsePercent(text: string, flag: string): number {
  const m = /^(\d{1,3}(?:\.\d{1,3})?)%?$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || n < 0 || n > 100)
    throw new RolloutRuleError(`${flag} must be a percentage from 0 to 100, got ${JSON.stringify(text)}`);
  return n;
}

/** The stable place of a vessel in every rollout: the same vessels go early each time unless chosen. */
function rank(name: string): string {
  return createHash('sha256').update(`tender-wave:${name}`).digest('hex');
}

/**
 * Assign each targeted vessel a wave (0 = the canary). Canaries, in the order given, go first; the rest
 * in a stable order. Wave i holds vessels up to ceil(waves[i]% of all); the first wave has at least one
 * vessel and every canary. A later wave may be empty when the fleet is small.
 */
export function assignWaves(vessels: string[], waves: number[], canary: string[] = []): Map<string, number> {
  const set = new Set(vessels);
  for (const c of canary) if (!set.has(c)) throw new RolloutRuleError(`--canary: vessel ${c} is not in the target`);
  const chosen = new Set(canary);
  const order = [...canary, ...vessels.filter((v) => !chosen.has(v)).sort((a, b) => (rank(a) < rank(b) ? -1 : 1))];
  const n = order.length;
  const cut = waves.map((p) => Math.ceil((p * n) / 100 - 1e-9));
  cut[0] = Math.min(n, Math.max(cut[0]!, 1, canary.length));
  for (let i = 1; i < cut.length; i++) cut[i] = Math.max(cut[i]!, cut[i - 1]!);
  const out = new Map<string, number>();
  order.forEach((v, k) =>
    out.set(
      v,
      cut.findIndex((c) => k < c),
    ),
  );
  return out;
}

export interface WaveCounts {
  total: number;
  succeeded: number;
  failed: number;
  held: number;
  unfinished: number;
}

export function countOutcomes(outcomes: RolloutOutcome[]): WaveCounts {
  const c: WaveCounts = { total: outcomes.length, succeeded: 0, failed: 0, held: 0, unfinished: 0 };
  for (const o of outcomes) {
    if (o === 'installed-healthy') c.succeeded++;
    else if (o === 'failed') c.failed++;
    else if (o === 'held') c.held++;
    else c.unfinished++;
  }
  return c;
}

export type WaveVerdict =
  | { state: 'running'; counts: WaveCounts }
  | { state: 'passed'; counts: WaveCounts }
  | { state: 'failed'; counts: WaveCounts; reason: string };

function passes(t: Threshold, succeeded: number, failed: number): boolean {
  const finished = succeeded + failed;
  if (finished === 0) return true;
  return t.kind === 'min-success'
    ? (succeeded * 100) / finished >= t.percent - 1e-9
    : (failed * 100) / finished <= t.percent + 1e-9;
}

function describe(t: Threshold): string {
  return t.kind === 'min-success' ? `at least ${t.percent}% successes` : `at most ${t.percent}% failures`;
}

/**
 * Judge one wave. `outcomes` are its vessels' current outcomes; when the deadline has passed the caller
 * has already turned the unfinished ones into failures. Held vessels have finished (the crew decided) but
 * count neither as success nor as failure.
 */
export function judgeWave(outcomes: RolloutOutcome[], rules: WaveRules, deadlinePassed: boolean): WaveVerdict {
  const counts = countOutcomes(outcomes);
  if (counts.total === 0) return { state: 'passed', counts };
  const { succeeded, failed, held, unfinished, total } = counts;
  const share = (x: number, of: number) => `${x} of ${of}`;
  // Even if every vessel still out there succeeds, the threshold cannot be met: stop now.
  if (!passes(rules.threshold, succeeded + unfinished, failed))
    return {
      state: 'failed',
      counts,
      reason:
        `${share(failed, succeeded + failed)} finished vessels failed; the rollout needs ` +
        `${describe(rules.threshold)}`,
    };
  const finished = succeeded + failed + held;
  const done = unfinished === 0 || deadlinePassed || (finished * 100) / total >= rules.quorumPercent - 1e-9;
  if (!done) return { state: 'running', counts };
  if (!passes(rules.threshold, succeeded, failed))
    return {
      state: 'failed',
      counts,
      reason:
        `${share(failed, succeeded + failed)} finished vessels failed; the rollout needs ` +
        `${describe(rules.threshold)}`,
    };
  const needed = Math.min(rules.minDone, total);
  if (succeeded + failed < needed)
    return {
      state: 'failed',
      counts,
      reason:
        `only ${succeeded + failed} vessel(s) of the wave finished by its ` +
        `${deadlinePassed ? 'deadline' : 'quorum'}; --min-done is ${needed}`,
    };
  return { state: 'passed', counts };
}

export type RolloutDecision =
  | { kind: 'wait' }
  | { kind: 'start-wave'; wave: number }
  | { kind: 'halt'; wave: number; reason: string; counts: WaveCounts }
  | { kind: 'complete' };

/**
 * What an active rollout does next, given the verdict on its current (highest started) wave. Empty waves
 * pass at once, so a small fleet does not stall on a wave with no vessel in it.
 */
export function decide(currentWave: number, waveCount: number, verdict: WaveVerdict): RolloutDecision {
  if (verdict.state === 'running') return { kind: 'wait' };
  if (verdict.state === 'failed')
    return {
      kind: 'halt',
      wave: currentWave,
      reason: `wave ${currentWave + 1}: ${verdict.reason}`,
      counts: verdict.counts,
    };
  return currentWave + 1 >= waveCount ? { kind: 'complete' } : { kind: 'start-wave', wave: currentWave + 1 };
}
