import { createHash } from 'node:crypto';
import { errorMessage } from '../../shared/errors.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { installPolicy } from './board-policies.js';
import type { BackupDeps } from './context.js';

/**
 * Policies from the hub: the desired state carries signed policy envelopes; each goes through the same
 * installPolicy as `tender policy install` (root's release keys, a sequence per name that only goes up,
 * the size cap), so the hub can deliver policies but never make one. What is installed stays on board
 * with the link down; a policy the hub stops sending is kept (only a newer signed sequence replaces or
 * removes one). A refused envelope is an event once per reason, not once per tick.
 */
export function createPolicySync(d: BackupDeps): (desired: DesiredState | undefined) => string[] {
  const reported = new Map<string, string>();
  return (desired) => {
    const changed: string[] = [];
    for (const text of desired?.policies ?? []) {
      const bytes = Buffer.from(text, 'base64');
      const key = createHash('sha256').update(bytes).digest('hex');
      try {
        const r = installPolicy(d.db, d.root(), bytes, {
          vessel: d.vessel,
          groups: desired?.groups,
          services: d.services,
          now: d.now(),
        });
        reported.delete(key);
        if (r.installed) {
          d.event('policy.installed', { policy: r.policy.name, sequence: r.policy.sequence, by: 'hub' });
          d.log.info({ policy: r.policy.name, sequence: r.policy.sequence }, 'backup policy installed from the hub');
          changed.push(r.policy.name);
        } else if (r.removed) {
          d.event(r.retired ? 'policy.retired' : 'policy.removed', {
            policy: r.policy.name,
            sequence: r.policy.sequence,
            by: 'hub',
          });
          d.log.info({ policy: r.policy.name, sequence: r.policy.sequence }, r.note);
          changed.push(r.policy.name);
        }
      } catch (err) {
        const reason = errorMessage(err);
        // "This vessel holds a newer one" is the steady state of a vessel that got a policy by hand first.
        if (reported.get(key) === reason) continue;
        reported.set(key, reason);
        d.event('policy.refused', { source: 'hub', reason });
        d.log.warn({ reason }, 'backup policy from the hub refused');
      }
    }
    return changed;
  };
}
