import { z } from 'zod';

/**
 * When a release may be downloaded: inside one of the configured UTC windows (e.g. "02:00-06:00", which
 * may wrap midnight), and, when asked, only while the link is marked cheap (port Wi-Fi, a LEO plan's
 * free hours). No windows means any time.
 */
export const windowSchema = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM-HH:MM (UTC)');

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

export function inWindow(windows: string[], now: Date): boolean {
  if (windows.length === 0) return true;
  const t = now.getUTCHours() * 60 + now.getUTCMinutes();
  return windows.some((w) => {
    const [a, b] = w.split('-').map(minutes) as [number, number];
    return a <= b ? t >= a && t < b : t >= a || t < b;
  });
}

export function transferAllowed(
  policy: { downloadWindows: string[]; onlyWhenCheap: boolean },
  linkCheap: boolean,
  now: Date,
): string | undefined {
  if (policy.onlyWhenCheap && !linkCheap) return 'waiting for a link marked cheap (tender link cheap)';
  if (!inWindow(policy.downloadWindows, now))
    return `outside the download windows ${policy.downloadWindows.join(', ')} (UTC)`;
  return undefined;
}
