import type { BackupStateRecord, HubStore } from './store/hub-store.js';

/**
 * Backups as shore sees them: the results vessels report in their backup.* events (kept per vessel and
 * policy by the store, alarms included: a failed or missed schedule stays an alarm ashore until a good
 * backup clears it), and the backups ashore. The status page calls backupColumn for its column.
 */

const RESULT_OF: Record<string, 'ok' | 'failed' | 'missed'> = {
  'backup.done': 'ok',
  'backup.failed': 'failed',
  'backup.refused': 'failed',
  'backup.missed': 'missed',
};

/** The backup events of one ingested telemetry batch noted in the store (others are ignored). */
export async function noteBackupEvents(
  store: HubStore,
  vesselId: string,
  events: readonly { type: string; ts: number; data: string }[],
): Promise<number> {
  let noted = 0;
  for (const e of events) {
    const result = RESULT_OF[e.type];
    if (!result) continue;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(e.data) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof data.policy !== 'string') continue;
    // Pre-restore safety copies are not the schedule's backups.
    if (data.kind === 'pre-restore') continue;
    const reason =
      result === 'missed'
        ? `${typeof data.slots === 'number' ? data.slots : 'some'} scheduled backup(s) missed`
        : typeof data.reason === 'string'
          ? data.reason
          : undefined;
    await store.backups.noteResult(vesselId, {
      policy: data.policy,
      result,
      id: typeof data.id === 'string' ? data.id : null,
      at: e.ts,
      reason,
      catchUp: data.catchUp === true,
    });
    noted++;
  }
  return noted;
}

export interface BackupCell {
  policy: string;
  /** The last good backup on board, and its age in seconds at `now`. */
  lastGood: { id: string; at: string; ageSeconds: number } | null;
  lastAshore: { id: string; at: string; ageSeconds: number } | null;
  alarm: { kind: string; reason: string; since: string } | null;
}

/** Per vessel name, its policies' last good backup and age, newest ashore, and any alarm. */
export async function backupColumn(store: HubStore, now: number): Promise<Map<string, BackupCell[]>> {
  const out = new Map<string, BackupCell[]>();
  const age = (at: number) => Math.max(0, Math.round((now - at) / 1000));
  const stamp = (x: { id: string; at: number } | null) =>
    x && { id: x.id, at: new Date(x.at).toISOString(), ageSeconds: age(x.at) };
  for (const s of await store.backups.states()) {
    const cells = out.get(s.vessel) ?? [];
    cells.push(cellOf(s, stamp));
    out.set(s.vessel, cells);
  }
  return out;
}

function cellOf(
  s: BackupStateRecord,
  stamp: (x: { id: string; at: number } | null) => BackupCell['lastGood'],
): BackupCell {
  return {
    policy: s.policy,
    lastGood: stamp(s.lastGood),
    lastAshore: stamp(s.lastAshore),
    alarm: s.alarm && { kind: s.alarm.kind, reason: s.alarm.reason, since: new Date(s.alarm.since).toISOString() },
  };
}

/** One line of text for a vessel's backups: "db-nightly 5h ago (ashore 5h) ALARM failed". */
export function backupText(cells: readonly BackupCell[] | undefined): string {
  if (!cells?.length) return '-';
  const h = (s: number) =>
    s < 3600 ? `${Math.round(s / 60)}m` : s < 86400 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return cells
    .map(
      (c) =>
        `${c.policy} ${c.lastGood ? `${h(c.lastGood.ageSeconds)} ago` : 'none'}` +
        (c.lastAshore ? ` (ashore ${h(c.lastAshore.ageSeconds)})` : '') +
        (c.alarm ? ` ALARM ${c.alarm.kind}` : ''),
    )
    .join('; ');
}
