import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "12h", "365d" → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (!m) throw new UsageError(`${what} must be a duration like 90s, 15m, 12h or 365d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * UNITS[m[2]!]!;
}
