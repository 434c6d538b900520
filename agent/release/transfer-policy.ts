import { z } from 'zod';
import type { VesselSettings } from '../../shared/protocol/bodies.js';
import { parseWindow, windowOpen } from '../../shared/protocol/maintenance-window.js';

/**
 * When a release may be downloaded: inside one of the configured UTC windows (e.g. "02:00-06:00", which
 * may wrap midnight), and, when asked, only while the link is marked cheap (port Wi-Fi, a LEO plan's
 * free hours). No windows means any time.
 */
export const windowSchema = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM-HH:MM (UTC)');

export interface TransferPolicy {
  downloadWindows: string[];
  onlyWhenCheap: boolean;
  bytesPerSecond: number;
  /** Where each setting in force comes from: the hub (per vessel or group) wins over agent.json. */
  from: { downloadWindows: PolicySource; onlyWhenCheap: PolicySource; bytesPerSecond: PolicySource };
}
export type PolicySource = 'hub' | 'agent.json';

/** The download policy in force: each setting the hub sets wins over agent.json's. */
export function effectivePolicy(
  config: { downloadWindows: string[]; downloadOnlyWhenCheap: boolean; releaseBytesPerSecond: number },
  hub: VesselSettings | undefined,
): TransferPolicy {
  const pick = <T>(h: T | undefined, local: T): [T, PolicySource] =>
    h === undefined ? [local, 'agent.json'] : [h, 'hub'];
  const [downloadWindows, wFrom] = pick(hub?.downloadWindows, config.downloadWindows);
  const [onlyWhenCheap, cFrom] = pick(hub?.downloadOnlyWhenCheap, config.downloadOnlyWhenCheap);
  const [bytesPerSecond, bFrom] = pick(hub?.releaseBytesPerSecond, config.releaseBytesPerSecond);
  return {
    downloadWindows,
    onlyWhenCheap,
    bytesPerSecond,
    from: { downloadWindows: wFrom, onlyWhenCheap: cFrom, bytesPerSecond: bFrom },
  };
}

/**
 * Inside one of the windows? agent.json's are `HH:MM-HH:MM` (UTC, may wrap midnight); the hub's are the
 * maintenance-window syntax (days, zone), of which the local form is a part. A window that does not parse
 * counts as closed.
 */
export function inWindow(windows: string[], now: Date): boolean {
  if (windows.length === 0) return true;
  return windows.some((w) => {
    try {
      return windowOpen(parseWindow(w), now.getTime());
    } catch {
      return false;
    }
  });
}

export function transferAllowed(
  policy: { downloadWindows: string[]; onlyWhenCheap: boolean },
  linkCheap: boolean,
  now: Date,
): string | undefined {
  if (policy.onlyWhenCheap && !linkCheap) return 'waiting for a link marked cheap (tender link cheap)';
  if (!inWindow(policy.downloadWindows, now))
    return `outside the download windows ${policy.downloadWindows.join(', ')}`;
  return undefined;
}
