import { Transform } from 'node:stream';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { boardPolicy } from './board-policies.js';
import { checkBackupFile, openBackup } from './backup-file.js';
import type { BackupDeps } from './context.js';
import { methodOps } from './methods.js';

/**
 * `tender backup verify`: the file matches the checksum recorded when it was written, it decompresses to
 * the size recorded, and it restores into a throwaway container of the service's own image (for postgres:
 * pg_restore into a scratch server, then the policy's check query). Nothing live is touched.
 */
export class VerifyError extends TenderError {}

export async function verifyBackup(
  d: BackupDeps,
  id: string,
): Promise<{ id: string; sha256: string; bytes: number; rawBytes: number; scratch: string; seconds: number }> {
  const t0 = Date.now();
  const b = d.db.backup(id);
  if (!b) throw new VerifyError(`no backup ${JSON.stringify(id)} on board (see: tender backup list)`);
  try {
    await checkBackupFile(b);
    const policy = boardPolicy(d.db, d.root(), b.policy);
    const target = d.locate(policy.target.app, policy.target.service);
    let raw = 0;
    const counted = openBackup(b).pipe(
      new Transform({
        transform(c: Buffer, _e, cb) {
          raw += c.byteLength;
          cb(null, c);
        },
        flush(cb) {
          cb(
            raw === b.rawBytes ? null : new VerifyError(`backup ${id} decompresses to ${raw} bytes, not ${b.rawBytes}`),
          );
        },
      }),
    );
    const scratch = await methodOps(policy.method).scratch(
      d,
      target,
      counted,
      AbortSignal.timeout(policy.timeoutSeconds * 1000),
    );
    if (raw !== b.rawBytes) throw new VerifyError(`backup ${id} decompresses to ${raw} bytes, not ${b.rawBytes}`);
    d.db.markVerified(id, d.now());
    const seconds = (Date.now() - t0) / 1000;
    d.event('backup.verified', { policy: b.policy, id, result: 'ok', scratch, seconds });
    return { id, sha256: b.sha256!, bytes: b.bytes!, rawBytes: b.rawBytes!, scratch, seconds };
  } catch (err) {
    d.event('backup.verified', { policy: b.policy, id, result: 'failed', reason: errorMessage(err) });
    throw new VerifyError(`backup ${id} does not verify: ${errorMessage(err)}`);
  }
}
