import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { pipeline, Transform, type Readable } from 'node:stream';
import { TenderError } from '../../shared/errors.js';
import type { BackupRow } from './backup-db.js';
import { decompressor } from './compression.js';

/** A backup file on disk checked against what was recorded when it was written. */
export class BackupAlteredError extends TenderError {
  constructor(message: string) {
    super(message, 'backup_altered');
  }
}

export async function checkBackupFile(b: BackupRow): Promise<void> {
  if (b.state !== 'ok' || !b.sha256) throw new BackupAlteredError(`backup ${b.id} is not a good backup (${b.state})`);
  if (!existsSync(b.file)) throw new BackupAlteredError(`backup ${b.id}: file ${b.file} is missing; refused`);
  const h = createHash('sha256');
  let n = 0;
  for await (const c of createReadStream(b.file) as AsyncIterable<Buffer>) {
    h.update(c);
    n += c.byteLength;
  }
  const got = h.digest('hex');
  if (got !== b.sha256 || n !== b.bytes)
    throw new BackupAlteredError(
      `backup ${b.id} does not match its checksum (sha256 ${got.slice(0, 12)}, ${n} bytes on disk; ` +
        `${b.sha256.slice(0, 12)}, ${b.bytes} bytes recorded): altered or damaged on disk; refused`,
    );
}

/**
 * The raw backup, decompressed, for a restore. Bytes are hashed again as they are read, and a file
 * changed after the check fails the stream at its end instead of being restored quietly.
 */
export function openBackup(b: BackupRow): Readable {
  const h = createHash('sha256');
  const hashing = new Transform({
    transform(c: Buffer, _e, cb) {
      h.update(c);
      cb(null, c);
    },
    flush(cb) {
      const got = h.digest('hex');
      cb(got === b.sha256 ? null : new BackupAlteredError(`backup ${b.id} changed on disk while it was read`));
    },
  });
  // One pipeline: destroying what the caller holds closes the file too, and any error reaches the caller.
  return pipeline(createReadStream(b.file), hashing, decompressor(b.compression), () => undefined);
}
