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
        const g = db.goodBackups(p.name)[0];
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
  const lines = [
    `backups    ${b.policies.map((p) => `${p.name}: last good ${p.lastGood ? p.lastGood.at.slice(0, 16).replace('T', ' ') : 'none'}`).join(', ')}`,
  ];
  for (const a of b.alarms)
    lines.push(`ALARM      backup ${a.policy} ${a.kind} since ${a.since.slice(0, 16).replace('T', ' ')}: ${a.reason}`);
  return lines;
}
