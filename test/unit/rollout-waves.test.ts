import { describe, expect, it } from 'vitest';
import {
  assignWaves,
  checkRules,
  decide,
  DEFAULT_RULES,
  judgeWave,
  parsePercent,
  RolloutRuleError,
  type WaveRules,
} from '../../hub/rollout/waves.js';
import type { RolloutOutcome } from '../../shared/protocol/rollout-outcome.js';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => `ship-${String(i).padStart(3, '0')}`);
const sizes = (m: Map<string, number>, waves: number) =>
  Array.from({ length: waves }, (_, w) => [...m.values()].filter((x) => x === w).length);
const rules = (over: Partial<WaveRules>): WaveRules => ({ ...DEFAULT_RULES, waves: [5, 25, 100], ...over });
const many = (o: RolloutOutcome, n: number): RolloutOutcome[] => Array.from({ length: n }, () => o);

describe('wave assignment', () => {
  it('puts 5% (at least one vessel) in the canary wave, then brings the total to 25% and 100%', () => {
    expect(sizes(assignWaves(fleet(20), [5, 25, 100]), 3)).toEqual([1, 4, 15]);
    expect(sizes(assignWaves(fleet(200), [5, 25, 100]), 3)).toEqual([10, 40, 150]);
    expect(sizes(assignWaves(fleet(3), [5, 25, 100]), 3)).toEqual([1, 0, 2]);
    expect(sizes(assignWaves(fleet(1), [5, 25, 100]), 3)).toEqual([1, 0, 0]);
  });

  it('is stable: the same vessels go first in every rollout, whatever order they are listed in', () => {
    const a = assignWaves(fleet(50), [10, 100]);
    const b = assignWaves(fleet(50).reverse(), [10, 100]);
    expect(
      [...a.entries()]
        .filter(([, w]) => w === 0)
        .map(([v]) => v)
        .sort(),
    ).toEqual(
      [...b.entries()]
        .filter(([, w]) => w === 0)
        .map(([v]) => v)
        .sort(),
    );
  });

  it('chosen canaries go first and the first wave grows to hold them all', () => {
    const m = assignWaves(fleet(20), [5, 25, 100], ['ship-007', 'ship-013', 'ship-019']);
    expect(m.get('ship-007')).toBe(0);
    expect(m.get('ship-013')).toBe(0);
    expect(m.get('ship-019')).toBe(0);
    expect(sizes(m, 3)).toEqual([3, 2, 15]);
    expect(() => assignWaves(fleet(3), [100], ['nope'])).toThrow('--canary: vessel nope is not in the target');
  });
});

describe('wave verdicts', () => {
  it('a healthy canary passes and the next wave starts; the last wave completes the rollout', () => {
    const r = rules({ threshold: { kind: 'min-success', percent: 99.5 } });
    const v = judgeWave(['installed-healthy'], r, false);
    expect(v.state).toBe('passed');
    expect(decide(0, 3, v)).toEqual({ kind: 'start-wave', wave: 1 });
    expect(decide(2, 3, judgeWave(many('installed-healthy', 15), r, false))).toEqual({ kind: 'complete' });
  });

  it('a failed canary halts at once with the reason and the counts', () => {
    const r = rules({ threshold: { kind: 'min-success', percent: 99.5 } });
    const d = decide(0, 3, judgeWave(['failed'], r, false));
    expect(d.kind).toBe('halt');
    if (d.kind !== 'halt') return;
    expect(d.reason).toBe('wave 1: 1 of 1 finished vessels failed; the rollout needs at least 99.5% successes');
    expect(d.counts).toMatchObject({ total: 1, failed: 1, succeeded: 0 });
  });

  it('halts before the wave ends once the threshold can no longer be met', () => {
    const r = rules({ threshold: { kind: 'max-failures', percent: 10 } });
    // 2 failed of 10 with 8 still pending: even if all 8 succeed, 20% > 10%.
    const outcomes = [...many('failed', 2), ...many('downloading', 8)];
    expect(judgeWave(outcomes, r, false).state).toBe('failed');
    // 1 failed of 10 with 9 pending could still end at 10%: keep waiting.
    expect(judgeWave([...many('failed', 1), ...many('pending', 9)], r, false).state).toBe('running');
  });

  it('waits for every vessel unless a quorum is set; with a quorum, proceeds while some stay offline', () => {
    const outcomes = [...many('installed-healthy', 8), ...many('pending', 2)];
    expect(judgeWave(outcomes, rules({}), false).state).toBe('running');
    expect(judgeWave(outcomes, rules({ quorumPercent: 80 }), false).state).toBe('passed');
    expect(judgeWave(outcomes, rules({ quorumPercent: 90 }), false).state).toBe('running');
  });

  it('at the deadline, needs --min-done finished vessels', () => {
    // The caller turned unfinished vessels into failures at the deadline; min-done counts finished ones.
    const r = rules({ minDone: 3, threshold: { kind: 'max-failures', percent: 100 } });
    const v = judgeWave([...many('installed-healthy', 2), 'held', 'held'], r, true);
    expect(v.state).toBe('failed');
    if (v.state === 'failed') expect(v.reason).toContain('--min-done is 3');
  });

  it('counts a crew hold as finished but neither success nor failure', () => {
    const r = rules({ threshold: { kind: 'min-success', percent: 100 } });
    expect(judgeWave(['installed-healthy', 'held'], r, false).state).toBe('passed');
  });

  it('an empty wave passes at once', () => {
    expect(decide(1, 3, judgeWave([], rules({}), false))).toEqual({ kind: 'start-wave', wave: 2 });
  });
});

describe('rules typed by people', () => {
  it.each([
    [{ waves: [25, 5, 100] }, '--waves must increase: 25% then 5%'],
    [{ waves: [5, 25] }, '--waves must end at 100%, not 25%'],
    [{ waves: [0, 100] }, '--waves: 0% is outside 1-100%'],
    [{ threshold: { kind: 'min-success', percent: 120 } }, '--min-success: 120% is outside 0-100%'],
    [{ threshold: { kind: 'max-failures', percent: -1 } }, '--max-failures: -1% is outside 0-100%'],
    [{ minDone: 0 }, '--min-done must be a whole number from 1'],
    [{ quorumPercent: 0 }, '--wave-quorum: 0% is outside 1-100%'],
    [{ deadlineMs: 1000 }, '--wave-deadline must be at least 1m'],
  ] as [Partial<WaveRules>, string][])('refuses %j', (over, message) => {
    expect(() => checkRules(rules(over))).toThrow(RolloutRuleError);
    expect(() => checkRules(rules(over))).toThrow(message);
  });

  it('reads percentages with or without the sign and refuses the rest', () => {
    expect(parsePercent('99.5%', '--min-success')).toBe(99.5);
    expect(parsePercent('10', '--max-failures')).toBe(10);
    expect(() => parsePercent('101%', '--min-success')).toThrow('--min-success must be a percentage from 0 to 100');
    expect(() => parsePercent('ten', '--max-failures')).toThrow('got "ten"');
  });
});
