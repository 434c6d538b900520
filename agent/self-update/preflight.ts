import { realpathSync } from 'node:fs';
import {
  currentTarget,
  ensureSelfDirs,
  fileFacts,
  pointCurrent,
  readJournal,
  SelfUpdateError,
  writeJournal,
  type SelfPaths,
  type UpdateJournal,
} from './layout.js';

/** Starts of a new executable during its trial before it is put back (a crash loop ends here). */
export const MAX_TRIAL_STARTS = 3;

export interface PreflightResult {
  action: 'none' | 'linked-installed' | 'installer-upgrade' | 'trial-start' | 'reverted' | 'trial-abandoned';
  current: string;
  reason?: string;
}

/**
 * Run before every start of the agent (the tender-agent unit's ExecStartPre), by the installed
 * executable, which no update ever replaces: whatever the last update left, `current` names a runnable
 * executable afterwards.
 *
 * - no `current` (first start, or a dangling link): it points at the installed executable;
 * - the installed executable changed since last seen (the installer ran again): it wins;
 * - a trial under way: counts this start; past MAX_TRIAL_STARTS or the deadline, the previous executable
 *   is put back and the journal says why (the agent that then runs reports it);
 * - a trial whose switch never happened (a kill between the journal write and the link): abandoned.
 *
 * Every step is one atomic rename (the link or the journal), so a kill -9 here leaves a state that the
 * next preflight finishes.
 */
export function preflight(p: SelfPaths, installed: string, now = Date.now()): PreflightResult {
  ensureSelfDirs(p);
  let j: UpdateJournal;
  try {
    j = readJournal(p);
  } catch (err) {
    // A journal that cannot be read cannot say what is safe: start what was installed, remember nothing.
    pointCurrent(p, installed);
    writeJournal(p, { phase: 'idle', floor: 0, failed: [], installed: seen(installed) });
    return { action: 'linked-installed', current: installed, reason: (err as SelfUpdateError).message };
  }
  const facts = fileFacts(installed);
  if (!facts) throw new SelfUpdateError(`installed executable ${installed} is missing`);
  const cur = currentTarget(p);
  if (!cur) {
    pointCurrent(p, installed);
    writeJournal(p, { ...j, phase: 'idle', installed: seen(installed) });
    return { action: 'linked-installed', current: installed };
  }
  const last = j.installed;
  if (last && (last.path !== installed || last.size !== facts.size || last.mtimeMs !== facts.mtimeMs)) {
    pointCurrent(p, installed);
    writeJournal(p, { phase: 'idle', floor: j.floor, failed: j.failed, installed: seen(installed) });
    return { action: 'installer-upgrade', current: installed };
  }
  if (!last) writeJournal(p, (j = { ...j, installed: seen(installed) }));
  if (j.phase !== 'trial' || !j.to || !j.from) return { action: 'none', current: cur };
  if (cur !== realOr(j.to.path)) {
    // The journal says trial but the link was never switched: the old agent runs and decides again.
    writeJournal(p, { ...j, phase: 'idle', starts: undefined, deadline: undefined });
    return { action: 'trial-abandoned', current: cur };
  }
  const starts = (j.starts ?? 0) + 1;
  const why =
    starts > MAX_TRIAL_STARTS
      ? `agent ${j.version} did not come up healthy in ${MAX_TRIAL_STARTS} starts`
      : j.deadline !== undefined && now > j.deadline
        ? `agent ${j.version} did not report healthy by ${new Date(j.deadline).toISOString()}`
        : undefined;
  if (!why) {
    writeJournal(p, { ...j, starts });
    return { action: 'trial-start', current: cur };
  }
  const back = fileFacts(j.from.path) ? j.from.path : installed;
  pointCurrent(p, back);
  writeJournal(p, {
    ...j,
    phase: 'reverted',
    starts,
    reason: why,
    failure: starts > MAX_TRIAL_STARTS ? 'crashed-after-flip' : 'rolled-back',
  });
  return { action: 'reverted', current: back, reason: why };
}

function seen(installed: string): NonNullable<UpdateJournal['installed']> {
  const f = fileFacts(installed)!;
  return { path: installed, size: f.size, mtimeMs: f.mtimeMs };
}

function realOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
