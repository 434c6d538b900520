import type { AuditEntry } from './hub-store.js';

/**
 * The audit record of a vessel's key being replaced by a re-key token: written by the claim, in its
 * transaction, beside the admin's `vessel.rekey` that issued the token. Keys are public; both are kept so
 * `tender audit` shows which key stopped being trusted, which took over, and from what address.
 */
export function rekeyed(vesselId: string, previousKey: string, c: { publicKey: string; address: string }): AuditEntry {
  return {
    actor: `enrolment:${c.address}`,
    action: 'vessel.rekeyed',
    detail: { vesselId, address: c.address, previousKey, publicKey: c.publicKey },
  };
}
