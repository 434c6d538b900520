import { z } from 'zod';
import { TenderError } from '../errors.js';
import { chunkDigestSchema, vesselNameSchema } from './names.js';
import { policyNameSchema } from './backup-policy.js';

/**
 * Backups ashore on the wire: the chunk list a vessel records for one backup once the hub holds all of
 * its chunks (shared/content/backup-chunks.ts says what a chunk is), what the hub lists, and the file
 * `tender backup download` writes for a sealed backup (opened by `tender backup open`).
 */
export class BackupWireError extends TenderError {}

// 16 GB of dump at 16 KB chunks: larger backups are not what a satellite link carries.
export const MAX_BACKUP_CHUNKS = 1_000_000;
// The chunk list as base64 of 32-byte digests, plus the small rest of the record.
export const BACKUP_RECORD_MAX_BYTES = Math.ceil((MAX_BACKUP_CHUNKS * 32 * 4) / 3) + 64 * 1024;
// The sealed header holds a 32-byte secret and two numbers: well under a kilobyte sealed.
const SEALED_HEADER_MAX_BYTES = 4096;

/** A backup's id as the vessel names it (policy-UTCtime[-n]). */
export const backupIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}-\d{8}T\d{6}Z(-\d{1,4})?$/, 'must be a backup id like db-nightly-20260101T030000Z');

export const backupParams = z.strictObject({ name: vesselNameSchema, id: backupIdSchema });

const ms = z.number().int().min(0);
const b64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');

export const backupRecordBodySchema = z.strictObject({
  policy: policyNameSchema,
  policySequence: z.number().int().min(1),
  method: z.string().max(16),
  /** Vessel clock (corrected), ms. */
  startedAt: ms,
  finishedAt: ms,
  /** The file on board: its size and sha256 (compressed as the policy says). */
  bytes: ms,
  sha256: chunkDigestSchema,
  /** The dump before compression: what the chunks join back to. */
  rawBytes: ms,
  /** sha256 of the joined chunks; null when sealed (it is inside the sealed header instead). */
  rawSha256: chunkDigestSchema.nullable(),
  seal: z.strictObject({ keyId: z.string().regex(/^[0-9a-f]{16}$/), header: b64(SEALED_HEADER_MAX_BYTES) }).nullable(),
  /** The chunk ids in order, as base64 of 32 bytes each. */
  chunks: b64(BACKUP_RECORD_MAX_BYTES),
});
export type BackupRecordBody = z.infer<typeof backupRecordBodySchema>;

export const backupStoredSchema = z.strictObject({ created: z.boolean(), id: z.string() });
export const backupChunksMissingSchema = z.strictObject({
  /** Chunk ids the hub lacks, in the order asked. */
  missing: z.array(chunkDigestSchema),
});
export const backupChunksQuerySchema = z.strictObject({
  digests: z.array(chunkDigestSchema).max(MAX_BACKUP_CHUNKS),
});

export const backupSummarySchema = z.strictObject({
  id: z.string(),
  policy: z.string(),
  policySequence: z.number().int(),
  method: z.string(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  receivedAt: z.iso.datetime(),
  bytes: ms,
  rawBytes: ms,
  sha256: z.string(),
  rawSha256: z.string().nullable(),
  sealed: z.string().nullable().describe('the seal key id, or null'),
  chunks: ms,
});
export const backupListSchema = z.strictObject({ vessel: z.string(), backups: z.array(backupSummarySchema) });

export const policySummarySchema = z.strictObject({
  name: z.string(),
  sequence: z.number().int(),
  targets: z.array(z.string()),
  publishedAt: z.iso.datetime(),
  publishedBy: z.string(),
});
export const policyListSchema = z.strictObject({ policies: z.array(policySummarySchema) });
export const policyPublishedSchema = z.strictObject({
  name: z.string(),
  sequence: z.number().int(),
  targets: z.array(z.string()),
  created: z.boolean(),
});

// ---- the sealed download: MAGIC, u32 header length, sealed header, then per chunk u32 length + stored form

export const SEALED_DOWNLOAD_MAGIC = Buffer.from('tender-sealed-backup/v1\n');

/** What the sealed header holds (sealed to the shore key by sealed-box.ts). */
export const sealedHeaderSchema = z.strictObject({
  secret: b64(64),
  rawSha256: chunkDigestSchema,
  rawBytes: ms,
});
export type SealedHeader = z.infer<typeof sealedHeaderSchema>;

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Digests as the record carries them, and back. */
export function encodeChunkList(digests: readonly string[]): string {
  return Buffer.concat(digests.map((d) => Buffer.from(d, 'hex'))).toString('base64');
}
export function decodeChunkList(b64text: string): string[] {
  const raw = Buffer.from(b64text, 'base64');
  if (raw.byteLength % 32 !== 0) throw new BackupWireError('chunk list: not a whole number of 32-byte ids');
  const out: string[] = [];
  for (let i = 0; i < raw.byteLength; i += 32) out.push(raw.subarray(i, i + 32).toString('hex'));
  return out;
}
