import { readFileSync } from 'node:fs';
import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import type { Step } from './plan.js';

export class UpdateInProgressError extends TenderError {
  constructor(message: string) {
    super(message, 'update_in_progress', 1, 409);
  }
}

export type UpdateKind = 'update' | 'rollback' | 'auto-rollback';

export interface UpdateRow {
  id: number;
  kind: UpdateKind;
  /** The app the update changes; from and to are versions of it. */
  app: string;
  from: string | null;
  to: string;
  state: 'running' | 'done' | 'failed';
  reason: string | null;
  actor: string;
  pid: number;
  pidStart: string;
  startedAt: number;
  finishedAt: number | null;
}

export interface JournalStep {
  idx: number;
  phase: 'forward' | 'undo';
  step: Step;
  done: boolean;
}

/** When a process started (kernel ticks since boot): with the pid, it names one process even after pid reuse. */
export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Is the process that began an update still running? A reused pid (another process) does not count. */
export function pidAlive(pid: number, start = ''): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return start === '' || processStart(pid) === start;
}

/**
 * The update journal in the agent's SQLite file (WAL, synchronous=FULL): an update and all its steps are
 * written before the first one is carried out, and each step is marked done after it. After a kill -9 or
 * a power cut, recovery reads here what was done and finishes or undoes it.
 */
export type Journal = ReturnType<typeof createJournal>;

export function createJournal(db: Db) {
  const running = db.prepare<
    [],
    {
      id: number;
      kind: UpdateKind;
      app: string;
      from_release: string | null;
      to_release: string;
      state: 'running';
      reason: string | null;
      actor: string;
      pid: number;
      pid_start: string;
      started_at: number;
      finished_at: number | null;
    }
  >("SELECT * FROM updates WHERE state = 'running' ORDER BY id LIMIT 1");
  const insertUpdate = db.prepare(
    `INSERT INTO updates (kind, app, from_release, to_release, state, actor, pid, pid_start, started_at)
     VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)`,
  );
  const insertStep = db.prepare(
    "INSERT INTO update_steps (update_id, idx, phase, step, state) VALUES (?, ?, ?, ?, 'pending')",
  );
  const maxIdx = db.prepare<[number], { m: number | null }>(
    'SELECT MAX(idx) AS m FROM update_steps WHERE update_id = ?',
  );
  const done = db.prepare("UPDATE update_steps SET state = 'done', at = ? WHERE update_id = ? AND idx = ?");
  const steps = db.prepare<[number], { idx: number; phase: 'forward' | 'undo'; step: string; state: string }>(
    'SELECT idx, phase, step, state FROM update_steps WHERE update_id = ? ORDER BY idx',
  );
  const finish = db.prepare('UPDATE updates SET state = ?, reason = ?, finished_at = ? WHERE id = ?');
  const adopt = db.prepare('UPDATE updates SET pid = ?, pid_start = ? WHERE id = ?');
  const recent = db.prepare<
    [number],
    {
      id: number;
      kind: UpdateKind;
      app: string;
      from_release: string | null;
      to_release: string;
      state: UpdateRow['state'];
      reason: string | null;
      actor: string;
      pid: number;
      pid_start: string;
      started_at: number;
      finished_at: number | null;
    }
  >('SELECT * FROM updates ORDER BY id DESC LIMIT ?');

  const toRow = (r: NonNullable<ReturnType<typeof recent.get>>): UpdateRow => ({
    id: r.id,
    kind: r.kind,
    app: r.app,
    from: r.from_release,
    to: r.to_release,
    state: r.state,
    reason: r.reason,
    actor: r.actor,
    pid: r.pid,
    pidStart: r.pid_start,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  });

  return {
    running(): UpdateRow | undefined {
      const r = running.get();
      return r && toRow(r);
    },
    /** Start an update; refuses while another live process is mid-update. */
    begin(kind: UpdateKind, app: string, from: string | null, to: string, actor: string, forward: Step[]): number {
      return db
        .transaction(() => {
          const r = running.get();
          if (r) {
            throw new UpdateInProgressError(
              pidAlive(r.pid, r.pid_start)
                ? `an update to ${r.to_release} is in progress (pid ${r.pid}); try again when it ends`
                : `an interrupted update to ${r.to_release} must be recovered first`,
            );
          }
          const id = Number(
            insertUpdate.run(kind, app, from, to, actor, process.pid, processStart(process.pid), Date.now())
              .lastInsertRowid,
          );
          forward.forEach((s, i) => insertStep.run(id, i, 'forward', JSON.stringify(s)));
          return id;
        })
        .immediate();
    },
    addUndo(id: number, undo: Step[]): JournalStep[] {
      return db.transaction(() => {
        const base = (maxIdx.get(id)?.m ?? -1) + 1;
        undo.forEach((s, i) => insertStep.run(id, base + i, 'undo', JSON.stringify(s)));
        return undo.map((step, i) => ({ idx: base + i, phase: 'undo' as const, step, done: false }));
      })();
    },
    steps(id: number): JournalStep[] {
      return steps
        .all(id)
        .map((s) => ({ idx: s.idx, phase: s.phase, step: JSON.parse(s.step) as Step, done: s.state === 'done' }));
    },
    markDone(id: number, idx: number): void {
      done.run(Date.now(), id, idx);
    },
    finish(id: number, state: 'done' | 'failed', reason: string | null): void {
      finish.run(state, reason, Date.now(), id);
    },
    adopt(id: number): void {
      adopt.run(process.pid, processStart(process.pid), id);
    },
    recent(limit = 10): UpdateRow[] {
      return recent.all(limit).map(toRow);
    },
  };
}
