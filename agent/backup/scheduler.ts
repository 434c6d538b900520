import { errorMessage } from '../../shared/errors.js';
import { sleep } from '../backoff.js';
import { BackupBusyError } from './backup-db.js';
import { boardPolicy } from './board-policies.js';
import type { BackupDeps } from './context.js';
import { recoverBackups } from './restore.js';
import { runBackup } from './run-backup.js';
import { planTick } from './schedule.js';
import { createPolicySync } from './desired-policies.js';

// A slot run this long after its time counts as missed (the server was off or busy), though it ran.
export const LATE_AFTER_MS = 15 * 60_000;

/**
 * The agent's backup loop: on every tick clean up what a crash left, then run each policy
 * whose slot has come (one run at a time: the server is small and its services come first). The slot is
 * claimed before the run, so a run that fails is an alarm and waits for the next slot instead of being
 * retried every tick.
 */
export async function backupLoop(d: BackupDeps, opts: { signal: AbortSignal; tickMs: number }): Promise<void> {
  const syncPolicies = createPolicySync(d);
  while (!opts.signal.aborted) {
    try {
      syncPolicies(d.desired?.());
    } catch (err) {
      d.log.warn({ reason: errorMessage(err) }, 'backup policies from the hub not checked');
    }
    try {
      await backupTick(d, opts.signal);
    } catch (err) {
      d.log.warn({ reason: errorMessage(err) }, 'backup schedule check failed');
    }
    await sleep(opts.tickMs, opts.signal);
  }
}

export async function backupTick(d: BackupDeps, signal?: AbortSignal): Promise<string[]> {
  // A crew command killed mid-run or mid-restore is cleaned up within a tick, not at the next agent start.
  await recoverBackups(d);
  const ran: string[] = [];
  for (const row of d.db.policies()) {
    if (signal?.aborted) break;
    let policy;
    try {
      policy = boardPolicy(d.db, d.root(), row.name);
    } catch (err) {
      d.db.setAlarm(row.name, 'refused', errorMessage(err), d.now());
      continue;
    }
    const now = d.now();
    const plan = planTick(policy.schedule, row.lastSlot, now);
    if (plan.reanchor !== undefined) {
      d.db.setSlot(row.name, plan.reanchor);
      d.event('backup.clock', { policy: row.name, claimedSlot: row.lastSlot, now, reanchoredTo: plan.reanchor });
      d.log.warn(
        { policy: row.name, claimedSlot: row.lastSlot, now },
        'schedule re-anchored: its last slot lay far ahead of the clock',
      );
      continue;
    }
    if (plan.run === undefined) continue;
    const late = now - plan.run > LATE_AFTER_MS;
    const missed = plan.missed + (late ? 1 : 0);
    d.db.setSlot(row.name, plan.run);
    if (missed > 0) {
      const reason =
        `${missed} scheduled backup(s) not run at their time (the agent was not ` +
        `running); one ran at ${new Date(now).toISOString()}`;
      d.db.setAlarm(row.name, 'missed', reason, now);
      d.event('backup.missed', { policy: row.name, slots: missed, lastSlot: row.lastSlot, slot: plan.run });
      d.log.warn({ policy: row.name, slots: missed }, 'scheduled backups missed; running once now');
    }
    try {
      await runBackup(d, row.name, {
        kind: 'scheduled',
        slot: plan.run,
        prevSlot: row.lastSlot,
        signal,
        catchUp: missed > 0,
      });
      if (missed === 0) d.db.clearAlarm(row.name, 'missed');
      ran.push(row.name);
    } catch (err) {
      if (err instanceof BackupBusyError)
        d.log.info({ policy: row.name, reason: err.message }, 'scheduled backup skipped');
      // Other failures were reported (event, alarm, log) by the run itself.
    }
  }
  return ran;
}
