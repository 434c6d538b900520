import { z } from 'zod';

// Backups never take the disk below this: the services, the OS and the outbox need room too.
export const DEFAULT_BACKUP_DISK_MARGIN_BYTES = 512 * 1024 * 1024;
// Cron slots are minutes apart; checking twice a minute runs a backup within 30 s of its slot.
export const DEFAULT_BACKUP_TICK_S = 30;

// Backups ashore share the link with everything else: 64 KiB/s is a quarter of a slow VSAT uplink.
export const DEFAULT_ASHORE_BYTES_PER_SECOND = 64 * 1024;
// How often to look for backups due ashore when nothing failed.
export const DEFAULT_ASHORE_TICK_S = 60;

/** `backup` in the agent config. */
export const backupConfigSchema = z.strictObject({
  /** Where backup files live; default DATA/backups. */
  dir: z.string().min(1).optional(),
  diskMarginBytes: z.number().int().min(0).default(DEFAULT_BACKUP_DISK_MARGIN_BYTES),
  tickSeconds: z.number().int().min(1).max(3600).default(DEFAULT_BACKUP_TICK_S),
  /** Upload cap for backups ashore (0: none). */
  ashoreBytesPerSecond: z.number().int().min(0).default(DEFAULT_ASHORE_BYTES_PER_SECOND),
  /** Bytes per upload request; a cut costs at most one of these again. */
  ashorePackBytes: z
    .number()
    .int()
    .min(16 * 1024)
    .max(32 * 1024 * 1024)
    .optional(),
  ashoreTickSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_ASHORE_TICK_S),
});
export type BackupConfig = z.infer<typeof backupConfigSchema>;

export function backupDirOf(dataDir: string, c: BackupConfig | undefined): string {
  return c?.dir ?? `${dataDir}/backups`;
}
