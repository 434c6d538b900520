import { existsSync } from 'node:fs';
import { backupDbPath, openBackupDb } from './backup-db.js';

/** What `tender status` shows of backups: each policy's last good backup and its alarms. */
export interface BackupStatus {
  policies: { name: string; lastGood: { id: string; at: string } | null }[];
  alarms: { policy: string; kind: string; reason: string; since: string }[];
}

export function readBackupStatus(dataDir: string): BackupStatus {
  const path = backupDbPath(dataDir);
  if (!existsSync(path)) return { policies: [], alarms: [] };
  const db = openBackupDb(path);
  try {
    return {
      policies: db.policies().map((p) => {
        const g = db.takenBackups(p.name)[0];
        return { name: p.name, lastGood: g ? { id: g.id, at: new Date(g.startedAt).toISOString() } : null };
      }),
      alarms: db.alarms().map((a) => ({ ...a, since: new Date(a.since).toISOString() })),
    };
  } finally {
    db.close();
  }
}

export function formatBackupStatus(b: BackupStatus): string[] {
  if (b.policies.length === 0) return [];
  const good = b.policies.map((p) => `${p.name}: last good ${p.lastGood ? minute(p.lastGood.at) : 'none'}`);
  const lines = [`backups    ${good.join(', ')}`];
  for (const a of b.alarms) lines.push(`ALARM      backup ${a.policy} ${a.kind} since ${minute(a.since)}: ${a.reason}`);
  return lines;
}

/** An ISO time to the minute, as a person reads it: 2026-12-02 13:45. */
function minute(iso: string): string {
  return iso.slice(0, 16).replace('T', ' ');
}
