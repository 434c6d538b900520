import type { Principal } from './auth.js';
import type { AuditEntry } from './store/hub-store.js';

/** Who did it, as the audit log names them. */
export function actorOf(principal: Principal | undefined): string {
  return principal?.kind === 'ops'
    ? `ops:${principal.name}:${principal.tokenId}`
    : principal?.kind === 'vessel'
      ? `vessel:${principal.vessel.name}`
      : 'anonymous';
}

/**
 * The audit record of an action (vessel added, revoked, release published, rollout started, ...): handed
 * to the store method that does the action, which writes it in the same transaction.
 */
export function auditEntry(principal: Principal | undefined, action: string, detail: unknown): AuditEntry {
  return { actor: actorOf(principal), action, detail };
}
