import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { fsyncDir, ensureDir } from '../../shared/fs-atomic.js';
import { SEALED_DOWNLOAD_MAGIC } from '../../shared/protocol/backup-ashore.js';
import type { PolicyDocument } from '../../shared/protocol/backup-policy.js';
import { SEAL_MAGIC } from '../../shared/trust/sealed-box.js';
import type { BackupRow } from './backup-db.js';
import { boardPolicy } from './board-policies.js';
import { compressor, decompressor, extensionOf, type Compression } from './compression.js';
import type { BackupDeps } from './context.js';
import { recoverBackups } from './restore.js';
import { defaultFreeBytes, mb, newBackupId } from './run-backup.js';

/**
 * A backup brought back on board: a dump downloaded ashore (`tender backup download`, or a sealed one
 * opened there with `tender backup open`) carried to the ship, after the disk that held the board's own
 * copies failed or retention removed the one wanted. It becomes a board backup of its policy (kind
 * `imported`), compressed as the policy says, so `tender backup verify` and `tender backup restore` take
 * it like any other. It is checked before anything is kept: the shape the policy's method writes, the
 * sha256 the download printed when given, and the disk guard; a sealed file is refused (its key stays
 * ashore). It is never shipped ashore again and never counts as the policy's last good backup.
 */
export class BackupImportError extends TenderError {}

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

// What each method's dump starts with: a file of another shape is not restored into the service.
const SHAPES: Record<string, { what: string; test: (head: Buffer) => boolean } | undefined> = {
  postgres: { what: 'a pg_dump custom-format archive', test: (h) => h.subarray(0, 5).toString('latin1') === 'PGDMP' },
  sqlite: { what: 'an SQLite database', test: (h) => h.subarray(0, 16).toString('latin1') === 'SQLite format 3\0' },
  volume: { what: 'a tar archive', test: (h) => h.subarray(257, 262).toString('latin1') === 'ustar' },
};

function head(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

function compressionOf(h: Buffer): Compression {
  if (h.subarray(0, 4).equals(ZSTD)) return 'zstd';
  if (h.subarray(0, 2).equals(GZIP)) return 'gzip';
  return 'none';
}

/** The first bytes of the raw dump, decompressed if the file is compressed. */
async function rawHead(file: string, c: Compression, n: number): Promise<Buffer> {
  if (c === 'none') return head(file, n);
  const parts: Buffer[] = [];
  let got = 0;
  const src = createReadStream(file);
  const raw = src.pipe(decompressor(c));
  src.on('error', (err) => raw.destroy(err));
  try {
    for await (const p of raw as AsyncIterable<Buffer>) {
      parts.push(p);
      got += p.byteLength;
      if (got >= n) break;
    }
  } catch (err) {
    throw new BackupImportError(`the file looks ${c}-compressed but does not decompress: ${errorMessage(err)}`);
  } finally {
    src.destroy();
    raw.destroy();
  }
  return Buffer.concat(parts).subarray(0, n);
}

export interface ImportOptions {
  policy: string;
  /** The raw dump's sha256 as `tender backup download` printed it: the file must match. */
  sha256?: string;
  actor: string;
}

export async function importBackup(d: BackupDeps, file: string, o: ImportOptions): Promise<BackupRow> {
  await recoverBackups(d);
  const policy = boardPolicy(d.db, d.root(), o.policy);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new BackupImportError(`cannot read ${file}: ${errorMessage(err)}`);
  }
  if (size === 0) throw new BackupImportError(`${file} is empty; nothing imported`);
  const first = head(file, SEALED_DOWNLOAD_MAGIC.byteLength);
  if (first.equals(SEALED_DOWNLOAD_MAGIC) || first.subarray(0, SEAL_MAGIC.byteLength).equals(SEAL_MAGIC))
    throw new BackupImportError(
      `${file} is sealed to the shore key, which never comes on board: open it ashore with ` +
        '`tender backup open FILE --key seal.key --out DUMP` and bring DUMP',
    );
  if (o.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(o.sha256))
    throw new BackupImportError(`--sha256 must be 64 lowercase hex digits, not ${JSON.stringify(o.sha256)}`);
  const given = compressionOf(first);
  const shape = SHAPES[policy.method.type];
  if (shape && !shape.test(await rawHead(file, given, 512)))
    throw new BackupImportError(
      `${file} is not ${shape.what}, which policy ${policy.name} (method ${policy.method.type}) restores; ` +
        'nothing imported',
    );
  const polDir = `${d.dir}/${policy.name}`;
  ensureDir(polDir);
  // A compressed file may inflate; the policy compresses it again, so its own size is the fair guess.
  const need = size + d.diskMarginBytes;
  const free = (d.freeBytes ?? defaultFreeBytes)(polDir);
  if (free < need)
    throw new BackupImportError(
      `disk guard: ${mb(free)} free under ${d.dir}, the import needs ${mb(need)} ` +
        `(${mb(d.diskMarginBytes)} stay free); refused`,
    );
  const started = d.now();
  const id = `${newBackupId(d, policy.name, started)}-imported`;
  const final = `${polDir}/${id}.dump${extensionOf(policy.compression)}`;
  const partial = `${final}.partial`;
  d.db.beginBackup({
    id,
    policy: policy.name,
    policySequence: policy.sequence,
    method: policy.method.type,
    kind: 'imported',
    file: partial,
    compression: policy.compression,
    at: started,
    slot: null,
    prevSlot: null,
  });
  try {
    const r = await writeImported(file, given, policy, partial);
    if (o.sha256 && r.rawSha256 !== o.sha256)
      throw new BackupImportError(
        `${file} has sha256 ${r.rawSha256}, not ${o.sha256} as given: a different or damaged file; nothing imported`,
      );
    renameSync(partial, final);
    fsyncDir(polDir);
    d.db.finishBackupOk(id, { bytes: r.bytes, rawBytes: r.rawBytes, sha256: r.sha256, at: d.now(), file: final });
    d.event('backup.imported', {
      policy: policy.name,
      id,
      from: basename(file),
      actor: o.actor,
      rawBytes: r.rawBytes,
      rawSha256: r.rawSha256,
      checked: o.sha256 ? 'sha256' : 'shape',
    });
    d.log.info({ policy: policy.name, id, from: file, rawBytes: r.rawBytes }, 'backup imported');
    return d.db.backup(id)!;
  } catch (err) {
    rmSync(partial, { force: true });
    d.db.forgetImport(id);
    throw err instanceof TenderError ? err : new BackupImportError(`import of ${file} failed: ${errorMessage(err)}`);
  } finally {
    d.db.unlock(policy.name);
  }
}

async function writeImported(
  file: string,
  given: Compression,
  policy: PolicyDocument,
  partial: string,
): Promise<{ bytes: number; rawBytes: number; sha256: string; rawSha256: string }> {
  let rawBytes = 0;
  let bytes = 0;
  const rawHash = createHash('sha256');
  const fileHash = createHash('sha256');
  const counting = (fn: (c: Buffer) => void) =>
    new Transform({
      transform(c: Buffer, _e, cb) {
        fn(c);
        cb(null, c);
      },
    });
  await pipeline(
    createReadStream(file),
    given === 'none' ? new PassThrough() : decompressor(given),
    counting((c) => {
      rawBytes += c.byteLength;
      rawHash.update(c);
    }),
    compressor(policy.compression),
    counting((c) => {
      bytes += c.byteLength;
      fileHash.update(c);
    }),
    createWriteStream(partial, { fd: openSync(partial, 'wx', 0o600) }),
  ).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOSPC' ? new BackupImportError(`disk full after ${mb(bytes)} written (ENOSPC); stopped`) : err;
  });
  const fd = openSync(partial, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { bytes, rawBytes, sha256: fileHash.digest('hex'), rawSha256: rawHash.digest('hex') };
}
