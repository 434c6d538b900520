import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { TenderError } from '../errors.js';
import { CHUNK_MAX } from './chunking.js';

/**
 * Backup chunks as the hub stores them. A dump is cut into the content-defined chunks releases use
 * (chunking.ts); each chunk travels and is stored as a small "stored form" whose sha256 is its id, so
 * the hub's chunk store checks every chunk against its id exactly as it checks release chunks, and a
 * second backup that shares most chunks with the first uploads only the ones the hub lacks.
 *
 * - plain: PLAIN_PREFIX || chunk bytes. The prefix keeps backup chunks apart from release chunks (a
 *   release never references an id made of it), so the hub's backup retention may delete its chunks.
 * - sealed: SEALED_PREFIX || iv (12) || AES-256-GCM(brotli(chunk)) || tag (16), where iv is the first 12
 *   bytes of HMAC-SHA256(macKey, chunk) (a synthetic IV): equal chunks give equal bytes, so they still
 *   dedupe, and the hub learns neither the chunk nor its plaintext digest. The keys come from a vessel
 *   secret that travels ashore only sealed to the shore key (sealed-box.ts), beside the backup's chunk
 *   list; opening checks the tag and that the iv is the HMAC of what came out.
 */
export class BackupChunkError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_backup_chunk');
  }
}

export const PLAIN_PREFIX = Buffer.from('tender-backup-chunk/v1\n');
export const SEALED_PREFIX = Buffer.from('tender-sealed-chunk/v1\n');
const IV = 12;
const TAG = 16;
const INFO_ENC = Buffer.from('tender backup chunk enc v1');
const INFO_MAC = Buffer.from('tender backup chunk mac v1');
// A vessel's backup CPU is shared with its services: brotli 5 is most of brotli 11's ratio at a tenth of its time.
const BROTLI_QUALITY = 5;

export interface ChunkSealKeys {
  enc: Buffer;
  mac: Buffer;
}

/** A new vessel secret for one shore seal key (kept on board; sent ashore only sealed). */
export function newChunkSecret(): Buffer {
  return randomBytes(32);
}

export function chunkSealKeys(secret: Buffer): ChunkSealKeys {
  if (secret.byteLength !== 32) throw new BackupChunkError('a chunk secret is 32 bytes');
  return {
    enc: Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), INFO_ENC, 32)),
    mac: Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), INFO_MAC, 32)),
  };
}

const brotli = (b: Buffer, quality: number) =>
  brotliCompressSync(b, {
    params: { [constants.BROTLI_PARAM_QUALITY]: quality, [constants.BROTLI_PARAM_SIZE_HINT]: b.byteLength },
  });

/** The stored form of one chunk (what its id is the sha256 of). */
export function storedChunk(plain: Buffer, keys?: ChunkSealKeys): Buffer {
  if (!keys) return Buffer.concat([PLAIN_PREFIX, plain]);
  const iv = createHmac('sha256', keys.mac).update(plain).digest().subarray(0, IV);
  const c = createCipheriv('aes-256-gcm', keys.enc, iv);
  const body = Buffer.concat([c.update(brotli(plain, BROTLI_QUALITY)), c.final()]);
  return Buffer.concat([SEALED_PREFIX, iv, body, c.getAuthTag()]);
}

export function chunkId(stored: Buffer): string {
  return createHash('sha256').update(stored).digest('hex');
}

/** How the stored form travels and sits in the chunk store: brotli, as every hub chunk (sealed bytes do not shrink). */
export function compressStored(stored: Buffer): Buffer {
  const sealed = stored.subarray(0, SEALED_PREFIX.byteLength).equals(SEALED_PREFIX);
  return brotli(stored, sealed ? 0 : BROTLI_QUALITY);
}

export function isBackupChunk(stored: Buffer): boolean {
  return (
    stored.subarray(0, PLAIN_PREFIX.byteLength).equals(PLAIN_PREFIX) ||
    stored.subarray(0, SEALED_PREFIX.byteLength).equals(SEALED_PREFIX)
  );
}

/** The chunk's bytes back from its stored form; sealed ones need the keys and are checked. */
export function openStoredChunk(stored: Buffer, keys?: ChunkSealKeys): Buffer {
  if (stored.subarray(0, PLAIN_PREFIX.byteLength).equals(PLAIN_PREFIX)) return stored.subarray(PLAIN_PREFIX.byteLength);
  if (!stored.subarray(0, SEALED_PREFIX.byteLength).equals(SEALED_PREFIX))
    throw new BackupChunkError('not a backup chunk');
  if (!keys) throw new BackupChunkError('a sealed chunk needs the backup key (open it with the shore seal key)');
  const at = SEALED_PREFIX.byteLength;
  if (stored.byteLength < at + IV + TAG) throw new BackupChunkError('sealed chunk is truncated');
  const iv = stored.subarray(at, at + IV);
  const d = createDecipheriv('aes-256-gcm', keys.enc, iv);
  d.setAuthTag(stored.subarray(stored.byteLength - TAG));
  let plain: Buffer;
  try {
    const body = Buffer.concat([d.update(stored.subarray(at + IV, stored.byteLength - TAG)), d.final()]);
    plain = brotliDecompressSync(body, { maxOutputLength: CHUNK_MAX });
  } catch {
    throw new BackupChunkError('sealed chunk does not open (altered, or sealed with another key)');
  }
  if (!createHmac('sha256', keys.mac).update(plain).digest().subarray(0, IV).equals(iv))
    throw new BackupChunkError('sealed chunk does not match its synthetic IV');
  return plain;
}
