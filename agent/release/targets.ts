import { appNameSchema, releaseVersionSchema } from '../../shared/protocol/names.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { AGENT_APP } from '../../shared/protocol/manifest.js';

/** One app the shore wants on this vessel, from a v2 desired state's `apps[]` or a v1 one's `release`. */
export interface Target {
  app: string;
  version: string;
  sequence: number;
  /** sha256 of the signed manifest envelope; absent from a v1 hub (then checked after the fetch only). */
  digest?: string;
  rolloutId: number | null;
  /** The signed manifest (base64 envelope), when the hub embedded it. */
  manifest?: string;
}

/**
 * The targets of a desired state, one per app; the agent's own executable (app tender-agent) is not an
 * app and is left to agentTargetOf. Names are checked again here (the sync edge checks them
 * first): a name that fails its pattern never reaches a path, a container name or SQL (ATTACKS.md 41).
 */
export function targetsOf(d: DesiredState | undefined): Target[] {
  return allTargets(d).filter((t) => t.app !== AGENT_APP);
}

/** The shore's target for the agent executable itself (agent/self-update), if any. */
export function agentTargetOf(d: DesiredState | undefined): Target | undefined {
  return allTargets(d).find((t) => t.app === AGENT_APP);
}

function allTargets(d: DesiredState | undefined): Target[] {
  if (!d) return [];
  const list: Target[] = d.apps
    ? d.apps.map((a) => ({
        app: a.app,
        version: a.version,
        sequence: a.sequence,
        digest: a.digest,
        rolloutId: a.rolloutId,
        manifest: a.manifest,
      }))
    : d.release
      ? [
          {
            app: d.release.app,
            version: d.release.version,
            sequence: d.release.sequence,
            rolloutId: d.release.rolloutId,
            manifest: d.manifest,
          },
        ]
      : [];
  const seen = new Set<string>();
  return list.filter((t) => {
    if (!namesOk(t) || seen.has(t.app)) return false;
    seen.add(t.app);
    return true;
  });
}

export function namesOk(t: { app: string; version: string }): boolean {
  return appNameSchema.safeParse(t.app).success && releaseVersionSchema.safeParse(t.version).success;
}

/** Why a desired state from the network is not for this vessel or names what must never be used, or undefined. */
export function desiredProblem(d: DesiredState, vessel: string): string | undefined {
  if (d.vessel !== vessel) return `desired state is for vessel ${JSON.stringify(d.vessel.slice(0, 80))}, not ${vessel}`;
  if (d.release && !namesOk(d.release))
    return (
      `desired release ${JSON.stringify(`${d.release.app}@${d.release.version}`.slice(0, 140))} ` +
      'is not a valid APP@VERSION'
    );
  const apps = new Set<string>();
  for (const a of d.apps ?? []) {
    if (apps.has(a.app)) return `desired state names app ${a.app} twice`;
    apps.add(a.app);
  }
  return undefined;
}
