import { errorMessage } from '../../shared/errors.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { nextWindowChange, parseWindow, windowOpen } from '../../shared/protocol/maintenance-window.js';

export type WindowVerdict =
  | { open: true; spec: string | null }
  | { open: false; spec: string; source: string; until: string | null; reason: string };

/**
 * May a release be switched to now? Only inside the maintenance window the hub set for this vessel (kept
 * on board in its desired state, so it holds with the link down), checked against the corrected clock.
 * No window: any time. A window that does not parse on board stays closed (the crew can `tender apply`).
 */
export function switchWindow(desired: Pick<DesiredState, 'window'> | undefined, now: number): WindowVerdict {
  const w = desired?.window;
  if (!w) return { open: true, spec: null };
  let parsed;
  try {
    parsed = parseWindow(w.spec);
  } catch (err) {
    return { open: false, spec: w.spec, source: w.source, until: null, reason: errorMessage(err) };
  }
  if (windowOpen(parsed, now)) return { open: true, spec: w.spec };
  const next = nextWindowChange(parsed, now);
  const until = next === null ? null : new Date(next).toISOString();
  return {
    open: false,
    spec: w.spec,
    source: w.source,
    until,
    reason: `waiting for window ${w.spec} (${w.source})${until ? ` until ${until}` : ''}`,
  };
}
