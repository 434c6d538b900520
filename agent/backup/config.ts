import { z } from 'zod';

// Backups never take the disk below this: the services, the OS and the outbox need room too.
export const DEFAULT_BACKUP_DISK_MARGIN_BYTES = 512 * 1024 * 1024;
// Cron slots are minutes apart; checking twice a minute runs a backup within 30 s of its slot.
export const DEFAULT_BACKUP_TICK_S = 30;

/** `backup` in the agent config. */
export const backupConfigSchema = z.strictObject({
  /** Where backup files live; default DATA/backups. */
  dir: z.string().min(1).optional(),
  diskMarginBytes: z.number().int().min(0).default(DEFAULT_BACKUP_DISK_MARGIN_BYTES),
  tickSeconds: z.number().int().min(1).max(3600).default(DEFAULT_BACKUP_TICK_S),
});
export type BackupConfig = z.infer<typeof backupConfigSchema>;

export function backupDirOf(dataDir: string, c: BackupConfig | undefined): string {
  return c?.dir ?? `${dataDir}/backups`;
}
