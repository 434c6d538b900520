import type { HubDeps } from './deps.js';
import type { Principal } from './auth.js';

/** Record who changed what on the hub (vessel added, revoked, release published, rollout started, ...). */
export function audit(
  deps: Pick<HubDeps, 'db' | 'now'>,
  principal: Principal | undefined,
  action: string,
  detail: unknown,
): void {
  const actor =
    principal?.kind === 'ops'
      ? `ops:${principal.name}:${principal.tokenId}`
      : principal?.kind === 'vessel'
        ? `vessel:${principal.vessel.name}`
        : 'anonymous';
  deps.db
    .prepare('INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)')
    .run(deps.now(), actor, action, JSON.stringify(detail));
}
