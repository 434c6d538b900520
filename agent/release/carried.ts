import type { DesiredApp, DesiredState } from '../../shared/protocol/bodies.js';
import type { CarriedRelease } from '../state-schema.js';

/**
 * The target the controller follows: the hub's desired state, with a release carried aboard on a bundle
 * taking an app's place when it is newer (higher sequence) than the hub's target for that app. Everything
 * after this is the hub's path: the crew hold, the window and the rollback rules apply to it alike.
 * Pure: the carried list lives in the state store under `carried`.
 */
export function withCarried(
  desired: DesiredState | undefined,
  carried: readonly CarriedRelease[],
  vessel: string,
): DesiredState | undefined {
  if (carried.length === 0) return desired;
  const base: DesiredState = desired ?? { vessel, release: null, rootVersion: 0, apps: [] };
  let release = base.release;
  let manifest = base.manifest;
  const apps = base.apps ? [...base.apps] : undefined;
  for (const c of carried) {
    const entry: DesiredApp = {
      app: c.app,
      version: c.version,
      sequence: c.sequence,
      digest: c.digest,
      rolloutId: null,
    };
    if (!release || (release.app === c.app && c.sequence > release.sequence)) {
      release = { app: c.app, version: c.version, sequence: c.sequence, rolloutId: 0 };
      // The hub's embedded manifest was for its own target.
      manifest = undefined;
    }
    if (apps) {
      const i = apps.findIndex((a) => a.app === c.app);
      if (i < 0) apps.push(entry);
      else if (c.sequence > apps[i]!.sequence) apps[i] = entry;
    }
  }
  const out: DesiredState = { ...base, release, ...(apps ? { apps } : {}) };
  if (manifest === undefined) delete out.manifest;
  else out.manifest = manifest;
  return out;
}

/** The carried list with `c` in it (one per app: a newer import replaces an older one). */
export function addCarried(list: readonly CarriedRelease[], c: CarriedRelease): CarriedRelease[] {
  return [...list.filter((x) => x.app !== c.app), c];
}
