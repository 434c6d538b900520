import { statSync } from 'node:fs';
import { TenderError } from '../shared/errors.js';

export class DataOwnerError extends TenderError {}

/**
 * Vessel commands run by root (`sudo tender rollback`, `tender agent enroll` after the .deb) act as the
 * user that owns the vessel's state, the `tender` user the services run as: a file or directory they make
 * (a database's WAL, a release folder, the config) stays usable by the agent, and the engine is reached
 * through that user's docker group as the agent reaches it. Members of the `tender` group reach the same
 * files through the group (the services' UMask and the state directory's setgid bit keep them shared).
 * A state directory still owned by root (enrolled by hand, no installer) changes nothing.
 */
export function actAsDataOwner(dataDir: string): void {
  if (process.getuid?.() !== 0) return;
  let owner: { uid: number; gid: number };
  try {
    owner = statSync(dataDir);
  } catch {
    return; // not made yet: whoever runs this makes it
  }
  if (owner.uid === 0) return;
  // process.initgroups exists on POSIX though @types/node leaves it out.
  const posix = process as unknown as { initgroups(user: number, extraGroup: number): void };
  try {
    posix.initgroups(owner.uid, owner.gid);
    process.setgid!(owner.gid);
    process.setuid!(owner.uid);
  } catch (err) {
    throw new DataOwnerError(
      `cannot act as the owner of ${dataDir} (uid ${owner.uid}): ${(err as Error).message}; ` +
        'is Tender installed (tender install)?',
    );
  }
}
