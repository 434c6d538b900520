import { TenderError } from '../../shared/errors.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { policyTargets, verifyPolicyEnvelope, type PolicyDocument } from '../../shared/protocol/backup-policy.js';
import type { BackupDb } from './backup-db.js';
import { latestSlot } from './schedule.js';

/**
 * The policies a vessel holds: verified like a release (a threshold of the trusted root's release keys,
 * strict canonical payload, a size cap) at install and again at every use, since files on disk may have
 * been altered; per policy name a sequence that only goes up, so an older policy cannot replace a newer.
 */
export class PolicyRefusedError extends TenderError {
  constructor(message: string) {
    super(message, 'policy_refused');
  }
}

export const verifyPolicyBytes = verifyPolicyEnvelope;

export interface ServiceNames {
  /** The services of the app's live release, or undefined when none of the app is live on board. */
  (app: string): { release: string; services: string[] } | undefined;
}

export type InstallResult = {
  policy: PolicyDocument;
  installed: boolean;
  removed?: boolean;
  /** A signed retirement took the policy off board now (it was held). */
  retired?: boolean;
  note: string;
};

/**
 * Install a signed policy; refused (nothing changed) when it is unsigned, older, or not for this vessel.
 * A newer sequence of a held policy that no longer names this vessel removes it (the backups stay).
 * `groups` are the vessel's groups as the hub last said; unknown (undefined), a group target is accepted.
 */
export function installPolicy(
  db: BackupDb,
  root: TrustedRoot,
  bytes: Buffer,
  ctx: { vessel: string; groups?: readonly string[]; services: ServiceNames; now: number },
): InstallResult {
  let p: PolicyDocument;
  try {
    p = verifyPolicyBytes(root, bytes);
  } catch (err) {
    throw new PolicyRefusedError(`policy refused: ${(err as Error).message}`);
  }
  const retiredAt = db.retiredSequence(p.name);
  if (retiredAt !== undefined) {
    if (p.retired && p.sequence === retiredAt)
      return { policy: p, installed: false, note: `policy ${p.name} is retired (#${retiredAt})` };
    if (p.sequence <= retiredAt)
      throw new PolicyRefusedError(
        `policy ${p.name} #${p.sequence} refused: it was retired on this vessel at #${retiredAt}`,
      );
  }
  if (p.retired) {
    const was = db.policy(p.name);
    if (was && p.sequence <= was.sequence)
      throw new PolicyRefusedError(
        `retirement of policy ${p.name} #${p.sequence} refused: this vessel holds #${was.sequence}`,
      );
    // Remembered even when the policy was never held here: a replay of an older one stays refused.
    db.retirePolicy(p.name, p.sequence, ctx.now);
    return was
      ? {
          policy: p,
          installed: false,
          removed: true,
          retired: true,
          note: `policy ${p.name} retired (#${p.sequence}): removed (its backups on board stay)`,
        }
      : { policy: p, installed: false, note: `policy ${p.name} retired (#${p.sequence}); it was not installed here` };
  }
  if (policyTargets(p.targets, { name: ctx.vessel, groups: ctx.groups }) === false) {
    const was = db.policy(p.name);
    if (was && p.sequence > was.sequence) {
      db.removePolicy(p.name);
      return {
        policy: p,
        installed: false,
        removed: true,
        note: `policy ${p.name} #${p.sequence} no longer names ${ctx.vessel}: removed (its backups on board stay)`,
      };
    }
    throw new PolicyRefusedError(`policy ${p.name} refused: it targets ${p.targets.join(', ')}, not ${ctx.vessel}`);
  }
  const live = ctx.services(p.target.app);
  if (live && !live.services.includes(p.target.service))
    throw new PolicyRefusedError(
      `policy ${p.name} refused: it targets service ${p.target.app}/${p.target.service}, which the live release ` +
        `${p.target.app}@${live.release} does not have (${live.services.join(', ')})`,
    );
  const held = db.policy(p.name);
  if (held) {
    if (held.sequence === p.sequence && Buffer.compare(held.envelope, bytes) === 0)
      return { policy: p, installed: false, note: `policy ${p.name} #${p.sequence} is already installed` };
    if (p.sequence <= held.sequence)
      throw new PolicyRefusedError(
        `policy ${p.name} #${p.sequence} refused: this vessel holds #${held.sequence} ` +
          `(an older policy cannot replace a newer one)`,
      );
  }
  // A new policy starts at the slot just passed: installing one does not run it at once.
  db.installPolicy(p.name, p.sequence, bytes, ctx.now, held?.lastSlot ?? latestSlot(p.schedule, ctx.now));
  return {
    policy: p,
    installed: true,
    note: live ? '' : `app ${p.target.app} is not live on board yet; runs wait for it`,
  };
}

/** An installed policy, verified again. */
export function boardPolicy(db: BackupDb, root: TrustedRoot, name: string): PolicyDocument {
  const row = db.policy(name);
  if (!row) throw new PolicyRefusedError(`no backup policy ${JSON.stringify(name)} on board (see: tender policy list)`);
  let p: PolicyDocument;
  try {
    p = verifyPolicyBytes(root, row.envelope);
  } catch (err) {
    throw new PolicyRefusedError(`policy ${name} kept on board no longer verifies: ${(err as Error).message}`);
  }
  if (p.name !== name || p.sequence !== row.sequence)
    throw new PolicyRefusedError(`policy ${name} kept on board holds ${p.name} #${p.sequence}`);
  return p;
}
