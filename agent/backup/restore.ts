import { rmSync } from 'node:fs';
import { pipeline, Transform, type Readable } from 'node:stream';
import { TenderError, errorMessage } from '../../shared/errors.js';
import type { PolicyDocument } from '../../shared/protocol/backup-policy.js';
import { faultPoint } from '../fault.js';
import { pidAlive } from '../release/journal.js';
import { LABELS } from '../release/runtime.js';
import type { BackupRow, RestoreJournalStep, RestoreStep } from './backup-db.js';
import { boardPolicy } from './board-policies.js';
import { checkBackupFile, openBackup } from './backup-file.js';
import {
  HELPER_HOME_LABEL,
  HELPER_LABEL,
  HELPER_OWNER_LABEL,
  helperHome,
  type BackupDeps,
  type BackupTarget,
} from './context.js';
import { gateService, methodOps, startService, stopService, type MethodOps } from './methods.js';
import { runBackup } from './run-backup.js';

/**
 * A restore, journaled like a swap: every step is written before the first acts and marked after it
 * acts. First a safety copy of the data as it is now (a backup by the same method), then stop the service
 * when the method replaces files under it, apply, start, and the health gate (the release's gate, then a
 * check that the data answers). A failed step or gate puts the safety copy back the same way. After a
 * kill -9 at any step, recovery finishes a restore whose apply was marked done and otherwise puts the
 * safety copy back: the service ends up with the old data or the new, whole, never half of one.
 */
export class RestoreError extends TenderError {}

interface Ctx {
  d: BackupDeps;
  id: number;
  policy: PolicyDocument;
  ops: MethodOps;
  target: BackupTarget;
  backup: BackupRow;
}

export function plannedSteps(ops: MethodOps): RestoreStep[] {
  return ops.stopsService ? ['safety', 'stop', 'apply', 'start', 'gate'] : ['safety', 'apply', 'gate'];
}

/** What puts the previous data back, given the forward steps done (and the first one not, which may have acted). */
export function undoSteps(ops: MethodOps, forward: RestoreJournalStep[]): RestoreStep[] {
  const firstOpen = forward.find((s) => !s.done)?.step;
  const acted = new Set(forward.filter((s) => s.done).map((s) => s.step));
  if (firstOpen) acted.add(firstOpen);
  if (acted.has('apply')) return ops.stopsService ? ['stop', 'apply', 'start', 'gate'] : ['apply', 'gate'];
  if (acted.has('stop')) return ['start', 'gate'];
  return [];
}

export async function restoreBackup(
  d: BackupDeps,
  backupId: string,
  actor: string,
): Promise<{ restore: number; backup: string; safety: string | null; seconds: number }> {
  await recoverBackups(d);
  const t0 = Date.now();
  const b = d.db.backup(backupId);
  if (!b || b.state !== 'ok')
    throw new RestoreError(`no good backup ${JSON.stringify(backupId)} on board (see: tender backup list)`);
  await checkBackupFile(b);
  const policy = boardPolicy(d.db, d.root(), b.policy);
  if (policy.method.type !== b.method)
    throw new RestoreError(
      `backup ${b.id} was taken by method ${b.method}; policy ${policy.name} now says ${policy.method.type}`,
    );
  const ops = methodOps(policy.method);
  if (policy.method.type === 'exec' && !policy.method.restore)
    throw new RestoreError(
      `policy ${policy.name} has no restore command (method.restore): backup ${b.id} cannot be restored`,
    );
  const target = d.locate(policy.target.app, policy.target.service);
  const id = d.db.beginRestore(b.id, policy.name, actor, plannedSteps(ops));
  const ctx: Ctx = { d, id, policy, ops, target, backup: b };
  d.event('restore.started', { policy: policy.name, backup: b.id, actor });
  d.log.info({ restore: id, backup: b.id, steps: plannedSteps(ops) }, 'restore started');
  try {
    await runForward(ctx);
  } catch (err) {
    const why = errorMessage(err);
    await undo(ctx, why);
    throw new RestoreError(`restore of ${b.id} failed: ${why}${safetyNote(ctx)}`);
  } finally {
    d.db.unlock(policy.name);
  }
  const seconds = (Date.now() - t0) / 1000;
  d.db.finishRestore(id, 'done', null);
  d.event('restore.done', { policy: policy.name, backup: b.id, actor, seconds, result: 'ok' });
  d.log.info({ restore: id, backup: b.id, seconds }, 'restore done');
  return { restore: id, backup: b.id, safety: d.db.restore(id)!.safetyId, seconds };
}

function safetyNote(ctx: Ctx): string {
  const r = ctx.d.db.restore(ctx.id)!;
  if (r.state === 'undone') return `; the previous data is back (safety copy ${r.safetyId})`;
  if (r.state === 'failed' && !r.safetyId) return '; nothing was changed';
  return `; putting the previous data back failed too: restore ${r.safetyId ?? 'the safety copy'} by hand`;
}

async function runForward(ctx: Ctx): Promise<void> {
  for (const s of ctx.d.db.restoreSteps(ctx.id)) {
    if (s.phase !== 'forward' || s.done) continue;
    faultPoint(`restore-${s.step}`, 'before');
    await execStep(ctx, s.step, 'forward');
    ctx.d.db.stepDone(ctx.id, s.idx);
    faultPoint(`restore-${s.step}`, 'after');
  }
}

async function execStep(ctx: Ctx, step: RestoreStep, phase: 'forward' | 'undo'): Promise<void> {
  const { d, target, ops } = ctx;
  switch (step) {
    case 'safety': {
      const safety = await runBackup(d, ctx.policy.name, { kind: 'pre-restore', keepLock: true });
      d.db.setSafety(ctx.id, safety.id);
      return;
    }
    case 'stop':
      return stopService(d, target);
    case 'start':
      return startService(d, target);
    case 'gate':
      await gateService(d, target);
      return ops.check(d, target);
    case 'apply': {
      const from = phase === 'forward' ? ctx.backup : safetyOf(ctx);
      if (phase === 'undo') await checkBackupFile(from);
      const input = phase === 'forward' ? withFault(openBackup(from)) : openBackup(from);
      try {
        return await ops.apply(d, target, input, AbortSignal.timeout(ctx.policy.timeoutSeconds * 1000));
      } finally {
        input.destroy();
      }
    }
  }
}

// The kill -9 tests stop a restore mid-stream once this much has gone in (TENDER_FAULT=kill:after:restore-stream).
const FAULT_AFTER_BYTES = 64 * 1024;

function withFault(input: Readable): Readable {
  let n = 0;
  return pipeline(
    input,
    new Transform({
      transform(c: Buffer, _e, cb) {
        n += c.byteLength;
        if (n >= FAULT_AFTER_BYTES) faultPoint('restore-stream', 'after');
        cb(null, c);
      },
    }),
    () => undefined,
  );
}

function safetyOf(ctx: Ctx): BackupRow {
  const sid = ctx.d.db.restore(ctx.id)!.safetyId;
  const b = sid ? ctx.d.db.backup(sid) : undefined;
  if (!b) throw new RestoreError(`restore ${ctx.id} has no safety copy to put back`);
  return b;
}

async function undo(ctx: Ctx, why: string): Promise<void> {
  const { d } = ctx;
  const all = d.db.restoreSteps(ctx.id);
  const pending = all.some((s) => s.phase === 'undo')
    ? all.filter((s) => s.phase === 'undo')
    : d.db.addUndoSteps(
        ctx.id,
        undoSteps(
          ctx.ops,
          all.filter((s) => s.phase === 'forward'),
        ),
      );
  if (pending.length === 0) {
    d.db.finishRestore(ctx.id, 'failed', why);
    d.event('restore.failed', { policy: ctx.policy.name, backup: ctx.backup.id, result: 'failed', reason: why });
    return;
  }
  d.log.warn(
    { restore: ctx.id, reason: why, steps: pending.map((s) => s.step) },
    'restore failed; putting the previous data back',
  );
  let undoFailed: string | undefined;
  for (const s of pending) {
    if (s.done) continue;
    try {
      await execStep(ctx, s.step, 'undo');
      d.db.stepDone(ctx.id, s.idx);
    } catch (err) {
      // Keep going: a service left stopped is worse than one started on data that failed its gate.
      undoFailed ??= `${s.step}: ${errorMessage(err)}`;
      d.log.error({ restore: ctx.id, step: s.step, reason: errorMessage(err) }, 'undo step of a restore failed');
    }
  }
  const reason = undoFailed ? `${why}; putting the previous data back failed at ${undoFailed}` : why;
  d.db.finishRestore(ctx.id, undoFailed ? 'failed' : 'undone', reason);
  d.db.setAlarm(ctx.policy.name, 'failed', `restore of ${ctx.backup.id} failed: ${reason}`, d.now());
  d.event('restore.failed', {
    policy: ctx.policy.name,
    backup: ctx.backup.id,
    result: undoFailed ? 'failed' : 'undone',
    reason,
  });
}

/**
 * After a kill -9 or a power cut: backups that were running lose their partial file (and bring a paused
 * or stopped service back); restores finish or put the safety copy back. Runs at agent start and before
 * every backup command; work of a process still alive is left alone.
 */
export async function recoverBackups(d: BackupDeps): Promise<void> {
  for (const b of d.db.runningBackups()) {
    if (pidAlive(b.pid, b.pidStart)) continue;
    // A restore's safety copy is recovered with its restore (below).
    rmSync(b.file, { force: true });
    if (b.kind === 'imported') {
      // An import cut short brought nothing on board: no record, no alarm (the crew runs it again).
      d.db.forgetImport(b.id);
      d.log.warn({ policy: b.policy, id: b.id }, 'interrupted import cleaned up');
      continue;
    }
    if (b.quiesced) await bringBack(d, b);
    d.db.finishBackupFailed(b.id, 'interrupted (the process running it stopped)', d.now());
    d.db.giveBackSlot(b);
    d.db.setAlarm(b.policy, 'failed', `backup ${b.id} was interrupted`, d.now());
    d.event('backup.failed', { policy: b.policy, id: b.id, kind: b.kind, result: 'failed', reason: 'interrupted' });
    d.log.warn({ policy: b.policy, id: b.id }, 'interrupted backup cleaned up');
  }
  for (const r of d.db.runningRestores()) {
    if (pidAlive(r.pid, r.pidStart)) continue;
    await recoverRestore(d, r.id);
  }
  for (const p of d.db.policies()) d.db.dropDeadLock(p.name);
  await removeOrphanHelpers(d);
}

/**
 * Helper and scratch containers of this vessel's backups whose process died with them (a kill -9
 * mid-verify or mid-tar). Only ours: made for this backup folder, of an app on board. Another agent's
 * on the same engine is not, even when its owner's pid means nothing here (its own pid namespace).
 */
export async function removeOrphanHelpers(d: BackupDeps): Promise<void> {
  const home = helperHome(d.dir);
  try {
    for (const c of await d.docker.listContainers({ [HELPER_LABEL]: '1' })) {
      const theirs = c.labels[HELPER_HOME_LABEL];
      // Helpers from before the home label: ours only if their app is on board.
      if (theirs !== undefined ? theirs !== home : !d.services(c.labels[LABELS.app] ?? '')) continue;
      const [pid, start] = (c.labels[HELPER_OWNER_LABEL] ?? '').split(':');
      if (pid && pidAlive(Number(pid), start ?? '')) continue;
      await d.docker.removeScratch(c.id);
      d.log.warn({ container: c.name }, 'helper container of a process that stopped removed');
    }
  } catch (err) {
    d.log.warn({ reason: errorMessage(err) }, 'could not look for helper containers left behind');
  }
}

async function bringBack(d: BackupDeps, b: BackupRow): Promise<void> {
  try {
    const policy = boardPolicy(d.db, d.root(), b.policy);
    const t = d.locate(policy.target.app, policy.target.service);
    if (b.quiesced === 'pause') await d.docker.unpauseContainer(t.container);
    else await startService(d, t);
    d.db.setQuiesced(b.id, null);
    d.log.warn(
      { policy: b.policy, container: t.container },
      `service ${b.quiesced === 'pause' ? 'unpaused' : 'started'} after an interrupted backup`,
    );
  } catch (err) {
    d.log.error(
      { policy: b.policy, reason: errorMessage(err) },
      'could not bring the service back after an interrupted backup',
    );
  }
}

async function recoverRestore(d: BackupDeps, id: number): Promise<void> {
  const r = d.db.restore(id)!;
  d.db.adoptRestore(id);
  try {
    const policy = boardPolicy(d.db, d.root(), r.policy);
    const backup = d.db.backup(r.backupId)!;
    const ctx: Ctx = {
      d,
      id,
      policy,
      ops: methodOps(policy.method),
      target: d.locate(policy.target.app, policy.target.service),
      backup,
    };
    const steps = d.db.restoreSteps(id);
    const applied = steps.some((s) => s.phase === 'forward' && s.step === 'apply' && s.done);
    const undoing = steps.some((s) => s.phase === 'undo');
    d.log.warn({ restore: id, backup: r.backupId, applied, undoing }, 'recovering an interrupted restore');
    if (applied && !undoing) {
      try {
        await runForward(ctx);
        d.db.finishRestore(id, 'done', 'completed after an interruption');
        d.event('restore.done', {
          policy: policy.name,
          backup: backup.id,
          result: 'ok',
          reason: 'completed after an interruption',
        });
        return;
      } catch (err) {
        await undo(ctx, errorMessage(err));
        return;
      }
    }
    await undo(ctx, 'interrupted before the restored data was in place (the process running it stopped)');
  } catch (err) {
    d.db.finishRestore(id, 'failed', `recovery failed: ${errorMessage(err)}`);
    d.log.error({ restore: id, reason: errorMessage(err) }, 'recovery of an interrupted restore failed');
  } finally {
    d.db.unlock(r.policy);
  }
}
