import type { Logger } from 'pino';
import { TenderError } from '../../shared/errors.js';
import {
  FINISHED_OUTCOMES,
  ROLLOUT_OUTCOME_EVENT,
  rolloutOutcomeEventSchema,
  type RolloutOutcome,
} from '../../shared/protocol/rollout-outcome.js';
import type { HubStore, TelemetryRecord } from '../store/hub-store.js';
import type { NewDirective, RolloutMember, RolloutRecord, RolloutState } from '../store/rollout-records.js';
import { checkRules, countOutcomes, decide, judgeWave, type WaveCounts, type WaveRules } from './waves.js';

/**
 * The rollout engine: carries out the plans the store keeps. `tick` looks at every open rollout and
 * takes the next step the pure rules (waves.ts) decide: enlist vessels that joined a targeted group,
 * fail the vessels a wave's deadline left behind, start the next wave, halt, or complete. It runs on a
 * timer and right after a vessel's outcome arrives; every step is a guarded store call, so a restart (or
 * a second hub) picks up exactly where the plan stands.
 */

// Rollouts advance on outcomes as they arrive; the timer only catches deadlines and late group members,
// which are measured in hours, so a few seconds is plenty and costs one small query per open rollout.
export const ROLLOUT_TICK_MS = 5_000;
// Steps one tick may take on one rollout: empty waves pass at once, and there are at most 20 waves.
const MAX_STEPS_PER_TICK = 25;
const ENGINE_ACTOR = 'hub:rollout-engine';

export class RolloutEngineError extends TenderError {
  constructor(message: string, code = 'bad_rollout', status = 400) {
    super(message, code, 2, status);
  }
}

export type RolloutEventKind = 'wave-start' | 'halt' | 'complete';

export interface RolloutEngineDeps {
  store: HubStore;
  now: () => number;
  log?: Logger;
  /** Told of each wave start, halt and completion (metrics). */
  onEvent?: (kind: RolloutEventKind, rollout: RolloutRecord) => void;
}

export interface StartRequest {
  release: string;
  target: string;
  rules: WaveRules;
  /** vessel:NAME or group:G entries; a group's vessels inside the target, by name. */
  canary: string[];
  actor: string;
  kind?: 'release' | 'rollback';
  directive?: NewDirective;
}

export interface WaveView {
  wave: number;
  percent: number;
  started: boolean;
  counts: WaveCounts;
  vessels: RolloutMember[];
}

/** Members that still count in their rollout: superseded ones only if they had finished before. */
function counted(m: RolloutMember): boolean {
  return m.supersededBy === null || FINISHED_OUTCOMES.includes(m.outcome);
}

export function describeCounts(c: WaveCounts): string {
  return `${c.succeeded} healthy, ${c.failed} failed, ${c.held} held, ${c.unfinished} unfinished of ${c.total}`;
}

export function createRolloutEngine(deps: RolloutEngineDeps) {
  const { store } = deps;
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  /** One step at a time in this process (the store's guards cover other processes). */
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  }

  function event(kind: RolloutEventKind, r: RolloutRecord, detail: Record<string, unknown>): void {
    deps.log?.info({ rollout: r.id, release: `${r.app}@${r.version}`, event: kind, ...detail }, `rollout ${kind}`);
    deps.onEvent?.(kind, r);
  }

  async function canaryNames(entries: string[], target: string): Promise<string[]> {
    const names: string[] = [];
    for (const e of entries) {
      const m = /^(vessel|group):([a-z0-9][a-z0-9-]{0,62})$/.exec(e);
      if (!m) throw new RolloutEngineError(`--canary: ${JSON.stringify(e)} is not vessel:NAME or group:G`);
      if (m[1] === 'vessel') {
        const v = await store.vessels.getByName(m[2]!);
        if (!v || v.revokedAt !== null)
          throw new RolloutEngineError(`--canary: no vessel named ${m[2]}`, 'not_found', 404);
        names.push(v.name);
      } else {
        const members = await store.vessels.list({ limit: 100_000, group: m[2]! });
        const live = members.filter((v) => v.revokedAt === null);
        if (live.length === 0) throw new RolloutEngineError(`--canary: group ${m[2]} has no vessel`, 'not_found', 404);
        names.push(...live.map((v) => v.name));
      }
    }
    const unique = [...new Set(names)];
    // Of a canary group, only the vessels the rollout targets go first; a named vessel must be targeted.
    if (target.startsWith('group:') || target.startsWith('vessel:')) {
      const inTarget = new Set(
        target.startsWith('group:')
          ? (await store.vessels.list({ limit: 100_000, group: target.slice(6) })).map((v) => v.name)
          : [target.slice(7)],
      );
      const named = new Set(entries.filter((e) => e.startsWith('vessel:')).map((e) => e.slice(7)));
      for (const n of named)
        if (!inTarget.has(n)) throw new RolloutEngineError(`--canary: vessel ${n} is not in the target ${target}`);
      return unique.filter((n) => inTarget.has(n));
    }
    return unique;
  }

  async function step(r: RolloutRecord, now: number): Promise<boolean> {
    if (r.state !== 'active') return false;
    const wave = r.currentWave;
    let members = (await store.rollouts.members(r.id)).filter((m) => m.wave === wave && counted(m));
    const deadlinePassed =
      r.rules.deadlineMs !== null && r.waveStartedAt !== null && now - r.waveStartedAt >= r.rules.deadlineMs;
    if (deadlinePassed && members.some((m) => !FINISHED_OUTCOMES.includes(m.outcome))) {
      const hours = Math.round((r.rules.deadlineMs! / 3_600_000) * 10) / 10;
      await store.rollouts.expire(r.id, wave, `not done by the wave's deadline (${hours}h)`, now);
      members = (await store.rollouts.members(r.id)).filter((m) => m.wave === wave && counted(m));
    }
    // A vessel not started (superseded before its wave, or offline) still counts as unfinished.
    const verdict = judgeWave(
      members.map((m) => m.outcome),
      r.rules,
      deadlinePassed,
    );
    const next = decide(wave, r.rules.waves.length, verdict);
    if (next.kind === 'wait') return false;
    if (next.kind === 'start-wave') {
      const started = await store.rollouts.startWave(r.id, next.wave, now, {
        actor: ENGINE_ACTOR,
        action: 'rollout.wave-start',
        detail: { id: r.id, wave: next.wave + 1 },
      });
      if (started === null) return false;
      event('wave-start', r, {
        wave: next.wave + 1,
        vessels: started.length,
        previous: describeCounts(verdict.counts),
      });
      return true;
    }
    const to = next.kind === 'halt' ? 'halted' : 'completed';
    const reason = next.kind === 'halt' ? next.reason : null;
    const done = await store.rollouts.finish(r.id, to, { reason, counts: verdict.counts }, now, {
      actor: ENGINE_ACTOR,
      action: next.kind === 'halt' ? 'rollout.halt' : 'rollout.complete',
      detail: { id: r.id, reason, counts: verdict.counts },
    });
    if (done) event(next.kind === 'halt' ? 'halt' : 'complete', r, { reason, counts: describeCounts(verdict.counts) });
    return false;
  }

  /** Drives one rollout as far as its outcomes allow now. */
  async function drive(id: number, now: number): Promise<void> {
    await store.rollouts.enlist(id, now);
    for (let i = 0; i < MAX_STEPS_PER_TICK; i++) {
      const r = await store.rollouts.get(id);
      if (!r || !(await step(r, now))) return;
    }
  }

  /** Pause, resume or abort, audited (with where it came from: the page says so); a resume drives at once. */
  async function change(
    id: number,
    verb: 'pause' | 'resume' | 'abort',
    actor: string,
    via?: string,
  ): Promise<RolloutRecord> {
    const table: Record<typeof verb, { from: RolloutState[]; to: RolloutState; past: string }> = {
      pause: { from: ['active'], to: 'paused', past: 'paused' },
      resume: { from: ['paused'], to: 'active', past: 'resumed' },
      abort: { from: ['active', 'paused', 'halted'], to: 'aborted', past: 'aborted' },
    };
    const t = table[verb];
    const now = deps.now();
    const r = await serial(() =>
      store.rollouts.transition(
        id,
        { from: t.from, to: t.to, verb: t.past, reason: verb === 'abort' ? `aborted by ${actor}` : undefined },
        now,
        { actor, action: `rollout.${verb}`, detail: { id, ...(via && { via }) } },
      ),
    );
    if (verb === 'resume') await tickOne(id);
    return (await store.rollouts.get(id)) ?? r;
  }

  async function tickOne(id: number): Promise<void> {
    await serial(() => drive(id, deps.now()));
  }

  const engine = {
    async start(req: StartRequest) {
      checkRules(req.rules);
      const release = await store.releases.find(req.release);
      if (!release) throw new RolloutEngineError(`no release ${req.release} on the hub`, 'not_found', 404);
      const canary = await canaryNames(req.canary, req.target);
      const now = deps.now();
      const started = await serial(() =>
        store.rollouts.start(
          {
            releaseId: release.id,
            target: req.target,
            createdBy: req.actor,
            rules: req.rules,
            canary,
            kind: req.kind ?? 'release',
            directive: req.directive,
          },
          now,
          {
            actor: req.actor,
            action: req.kind === 'rollback' ? 'rollout.rollback' : 'rollout.start',
            detail: { release: `${release.app}@${release.version}`, target: req.target, waves: req.rules.waves },
          },
        ),
      );
      const r = (await store.rollouts.get(started.id))!;
      event('wave-start', r, { wave: 1, vessels: started.waves[0]?.length ?? 0 });
      // Empty or already-decided waves pass at once (a small fleet does not wait on an empty wave).
      await tickOne(started.id);
      return { rollout: (await store.rollouts.get(started.id))!, release, ...started };
    },
    pause: (id: number, actor: string, via?: string) => change(id, 'pause', actor, via),
    resume: (id: number, actor: string, via?: string) => change(id, 'resume', actor, via),
    abort: (id: number, actor: string, via?: string) => change(id, 'abort', actor, via),

    /** Every open rollout one step further; errors are logged, never thrown (it runs on a timer). */
    async tick(): Promise<void> {
      const open = await store.rollouts.open();
      for (const r of open) {
        try {
          await tickOne(r.id);
        } catch (err) {
          deps.log?.error({ err, rollout: r.id }, 'rollout tick failed');
        }
      }
    },

    /**
     * The `rollout.outcome` events of a stored telemetry batch, in the order the vessel queued them;
     * the rollouts they touched are driven at once. Malformed events are skipped (the batch is stored).
     */
    async ingest(vesselId: string, epoch: string, records: readonly TelemetryRecord[]): Promise<number> {
      const touched = new Set<number>();
      const now = deps.now();
      const events = records
        .filter((r): r is Extract<TelemetryRecord, { kind: 'event' }> => r.kind === 'event')
        .filter((r) => r.type === ROLLOUT_OUTCOME_EVENT)
        .sort((a, b) => a.seq - b.seq);
      for (const e of events) {
        let body: unknown;
        try {
          body = JSON.parse(e.data);
        } catch {
          continue;
        }
        const parsed = rolloutOutcomeEventSchema.safeParse(body);
        if (!parsed.success) continue;
        const id = await store.rollouts.recordOutcome(vesselId, parsed.data, { epoch, seq: e.seq }, now);
        if (id !== undefined) touched.add(id);
      }
      for (const id of touched) await tickOne(id);
      return events.length;
    },

    /** A rollout per wave and per vessel, as `tender rollout show` prints it. */
    async show(id: number): Promise<{ rollout: RolloutRecord; waves: WaveView[] } | undefined> {
      const r = await store.rollouts.get(id);
      if (!r) return undefined;
      const members = await store.rollouts.members(id);
      const waves = r.rules.waves.map((percent, wave): WaveView => {
        const vessels = members.filter((m) => m.wave === wave);
        return {
          wave,
          percent,
          started: wave <= r.currentWave,
          counts: countOutcomes(vessels.filter(counted).map((m) => m.outcome as RolloutOutcome)),
          vessels,
        };
      });
      return { rollout: r, waves };
    },

    /** Ticks every ROLLOUT_TICK_MS (or `everyMs`) until stop(); the first tick resumes what a restart left. */
    startTimer(everyMs = ROLLOUT_TICK_MS): void {
      if (timer) return;
      timer = setInterval(() => void engine.tick(), everyMs);
      timer.unref();
      void engine.tick();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      await queue;
    },
  };
  return engine;
}

export type RolloutEngine = ReturnType<typeof createRolloutEngine>;
