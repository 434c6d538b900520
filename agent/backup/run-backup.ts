import { createHash } from 'node:crypto';
import { createWriteStream, fsyncSync, openSync, closeSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { ensureDir, fsyncDir } from '../../shared/fs-atomic.js';
import type { PolicyDocument } from '../../shared/protocol/backup-policy.js';
import { faultPoint } from '../fault.js';
import type { BackupKind, BackupRow } from './backup-db.js';
import { boardPolicy } from './board-policies.js';
import { compressor, extensionOf } from './compression.js';
import type { BackupDeps } from './context.js';
import { methodOps } from './methods.js';

/**
 * One backup run: take the policy's lock, check the disk, stream the method's raw output through the
 * compressor into a partial file while hashing it, and only then rename it into place. A run that fails
 * for any reason (command exit, nothing written, timeout, disk guard, crash) leaves no partial file and
 * leaves the live service as it was; every run is an event with size, duration, checksum and result.
 */
export class BackupRunError extends TenderError {}
export class DiskGuardError extends TenderError {
  constructor(message: string) {
    super(message, 'disk_guard');
  }
}

// Re-check free space this often while writing: cheap, and well inside any margin worth having.
const DISK_CHECK_EVERY_BYTES = 1024 * 1024;
// A new dump is usually about the size of the last one; ask for this much more room than it took.
const GROWTH_ALLOWANCE = 1.25;
// The kill -9 tests stop the agent once this much of a dump has passed (TENDER_FAULT=kill:after:backup-write).
const FAULT_AFTER_BYTES = 64 * 1024;

export function defaultFreeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

function compactTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

export function newBackupId(d: BackupDeps, policy: string, at: number): string {
  const base = `${policy}-${compactTime(at)}`;
  let id = base;
  for (let i = 2; d.db.backup(id); i++) id = `${base}-${i}`;
  return id;
}

export interface RunOptions {
  kind: BackupKind;
  /** For a scheduled run: the slot it claims and the slot held before. */
  slot?: number;
  prevSlot?: number | null;
  signal?: AbortSignal;
  /** A restore's safety copy runs under the restore's lock and must not release it. */
  keepLock?: boolean;
  /** A scheduled run that catches up missed slots (shore keeps the missed alarm until one runs on time). */
  catchUp?: boolean;
}

export async function runBackup(d: BackupDeps, policyName: string, opts: RunOptions): Promise<BackupRow> {
  const policy = boardPolicy(d.db, d.root(), policyName);
  const started = d.now();
  const t0 = Date.now();
  const fail = (reason: string, id: string | null, event = 'backup.failed'): never => {
    d.db.setAlarm(policy.name, event === 'backup.refused' ? 'refused' : 'failed', reason, started);
    d.event(event, {
      policy: policy.name,
      id,
      kind: opts.kind,
      result: 'failed',
      reason,
      seconds: (Date.now() - t0) / 1000,
    });
    d.log.warn({ policy: policy.name, id, reason }, 'backup failed');
    throw new BackupRunError(`backup of ${policy.name} failed: ${reason}`);
  };
  let target;
  try {
    target = d.locate(policy.target.app, policy.target.service);
  } catch (err) {
    return fail(errorMessage(err), null);
  }
  const polDir = `${d.dir}/${policy.name}`;
  ensureDir(polDir);
  const free = (d.freeBytes ?? defaultFreeBytes)(polDir);
  const last = d.db.goodBackups(policy.name)[0];
  const need = Math.ceil((last?.bytes ?? 0) * GROWTH_ALLOWANCE) + d.diskMarginBytes;
  if (free < need)
    return fail(
      `disk guard: ${mb(free)} free under ${d.dir}, a backup needs ${mb(need)} (the ` +
        `last one took ${mb(last?.bytes ?? 0)}, ` +
        `and ${mb(d.diskMarginBytes)} stay free); refused`,
      null,
      'backup.refused',
    );
  const id = newBackupId(d, policy.name, started);
  const final = `${polDir}/${id}.dump${extensionOf(policy.compression)}`;
  const partial = `${final}.partial`;
  d.db.beginBackup({
    id,
    policy: policy.name,
    policySequence: policy.sequence,
    method: policy.method.type,
    kind: opts.kind,
    file: partial,
    compression: policy.compression,
    at: started,
    slot: opts.slot ?? null,
    prevSlot: opts.prevSlot ?? null,
  });
  d.log.info({ policy: policy.name, id, method: policy.method.type, kind: opts.kind }, 'backup started');
  try {
    const r = await writeBackup(d, policy, target, partial, id, opts.signal);
    renameSync(partial, final);
    fsyncDir(polDir);
    const seconds = (Date.now() - t0) / 1000;
    d.db.finishBackupOk(id, { ...r, at: d.now(), file: final });
    d.db.clearAlarm(policy.name, 'failed');
    d.db.clearAlarm(policy.name, 'refused');
    d.event('backup.done', {
      policy: policy.name,
      id,
      kind: opts.kind,
      method: policy.method.type,
      result: 'ok',
      ...(opts.catchUp ? { catchUp: true } : {}),
      bytes: r.bytes,
      rawBytes: r.rawBytes,
      sha256: r.sha256,
      seconds,
    });
    d.log.info({ policy: policy.name, id, bytes: r.bytes, rawBytes: r.rawBytes, seconds }, 'backup done');
    pruneBackups(d, policy);
    return d.db.backup(id)!;
  } catch (err) {
    rmSync(partial, { force: true });
    d.db.finishBackupFailed(id, errorMessage(err), d.now());
    return fail(errorMessage(err), id);
  } finally {
    if (!opts.keepLock) d.db.unlock(policy.name);
  }
}

async function writeBackup(
  d: BackupDeps,
  policy: PolicyDocument,
  target: ReturnType<BackupDeps['locate']>,
  partial: string,
  id: string,
  outer?: AbortSignal,
): Promise<{ bytes: number; rawBytes: number; sha256: string }> {
  const ac = new AbortController();
  let failure: Error | undefined;
  const stop = (err: Error) => {
    failure ??= err;
    ac.abort();
  };
  const onOuter = () => stop(new BackupRunError('stopped (the agent is shutting down)'));
  if (outer?.aborted) onOuter();
  outer?.addEventListener('abort', onOuter, { once: true });
  const timer = setTimeout(
    () => stop(new BackupRunError(`timed out after ${policy.timeoutSeconds}s (the policy's timeout)`)),
    policy.timeoutSeconds * 1000,
  );
  let rawBytes = 0;
  let bytes = 0;
  let checkedAt = 0;
  let faulted = false;
  const hash = createHash('sha256');
  const freeBytes = d.freeBytes ?? defaultFreeBytes;
  const raw = new Transform({
    transform(c: Buffer, _e, cb) {
      rawBytes += c.byteLength;
      if (!faulted && rawBytes >= FAULT_AFTER_BYTES) {
        faulted = true;
        faultPoint('backup-write', 'after');
      }
      cb(null, c);
    },
  });
  const sink = new Transform({
    transform(c: Buffer, _e, cb) {
      bytes += c.byteLength;
      hash.update(c);
      if (bytes - checkedAt >= DISK_CHECK_EVERY_BYTES) {
        checkedAt = bytes;
        const free = freeBytes(dirname(partial));
        if (free < d.diskMarginBytes)
          return cb(
            new DiskGuardError(
              `disk guard: free space fell to ${mb(free)} (margin ${mb(d.diskMarginBytes)}) ` +
                `after ${mb(bytes)} written; stopped`,
            ),
          );
      }
      cb(null, c);
    },
  });
  // Opened here, not lazily by the stream, so the file exists before anything can fail and be cleaned up.
  const file = createWriteStream(partial, { fd: openSync(partial, 'wx', 0o600) });
  const written = pipeline(raw, compressor(policy.compression), sink, file).catch((err: NodeJS.ErrnoException) => {
    stop(
      err.code === 'ENOSPC'
        ? new DiskGuardError(`disk full after ${mb(bytes)} written (ENOSPC); stopped`)
        : (err as Error),
    );
  });
  const ops = methodOps(policy.method);
  try {
    await ops.dump(d, target, raw, ac.signal, (what) => d.db.setQuiesced(id, what));
    if (failure) throw failure;
    if (rawBytes === 0) throw new BackupRunError(`${policy.method.type} backup wrote nothing`);
    raw.end();
    await written;
    if (failure) throw failure;
    const fd = openSync(partial, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { bytes, rawBytes, sha256: hash.digest('hex') };
  } catch (err) {
    // The first cause wins: tearing the pipeline down adds a "premature close" of its own.
    failure ??= err as Error;
    ac.abort();
    raw.destroy();
    await written;
    throw failure;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuter);
  }
}

export function mb(n: number): string {
  return `${(n / 1e6).toFixed(n < 1e7 ? 2 : 0)} MB`;
}

/** Retention: at most `count` good backups, none older than the age, and never the newest one. */
export function pruneBackups(d: BackupDeps, policy: PolicyDocument): string[] {
  const now = d.now();
  const removed: string[] = [];
  const good = d.db.goodBackups(policy.name);
  good.forEach((b, i) => {
    if (i === 0) return;
    const tooMany = i >= policy.retention.count;
    const tooOld = now - b.startedAt > policy.retention.maxAgeSeconds * 1000;
    if (!tooMany && !tooOld) return;
    rmSync(b.file, { force: true });
    d.db.markRemoved(b.id);
    removed.push(b.id);
  });
  if (removed.length) d.log.info({ policy: policy.name, removed }, 'old backups removed by retention');
  return removed;
}
