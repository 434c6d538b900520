import { TenderError } from '../errors.js';

/**
 * Maintenance windows: when a vessel may switch to a new release. Set on the hub per vessel or group,
 * carried to the vessel in its desired state and checked there against the corrected clock, so a window
 * holds with the link down. The same parser runs on both sides: the hub refuses a window it could not
 * honour, and the vessel reads exactly what the hub accepted.
 *
 * Grammar (case-insensitive day names, 24-hour times, one time zone for the whole window):
 *
 *   window  := range (";" range)* [zone]
 *   range   := [days] HH:MM "-" HH:MM
 *   days    := "daily" | dayset ("," dayset)*
 *   dayset  := DAY | DAY "-" DAY          (Mon-Thu; Fri-Mon wraps over the week end)
 *   zone    := "UTC" | an IANA name such as Europe/Oslo (default UTC)
 *
 * A range whose end is not after its start crosses midnight: "Fri 22:00-02:00" opens Friday 22:00 and
 * closes Saturday 02:00; its days name the day it opens. "24:00" is allowed as an end. Examples:
 * "Mon-Thu 02:00-04:00 UTC", "Mon-Fri 22:00-02:00; Sat,Sun 10:00-14:00 Europe/Oslo".
 */
export class WindowError extends TenderError {
  constructor(spec: string, why: string) {
    super(`window ${JSON.stringify(spec.slice(0, 200))}: ${why}`, 'bad_window', 2, 400);
  }
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
// A window spec is typed by people; anything longer is not a window.
export const MAX_WINDOW_SPEC_LENGTH = 256;
// Ranges in one window: a week of per-day ranges with room to spare.
const MAX_RANGES = 16;
const MINUTES_PER_DAY = 24 * 60;
// How far ahead the next opening is looked for: every range repeats within a week.
const LOOKAHEAD_MINUTES = 8 * MINUTES_PER_DAY;

export interface WindowRange {
  /** Days (0 = Sunday) on which the range opens. */
  days: number[];
  /** Minutes after local midnight. */
  start: number;
  /** Minutes after local midnight; <= start means the range closes the next day. */
  end: number;
}

export interface MaintenanceWindow {
  spec: string;
  zone: string;
  ranges: WindowRange[];
}

function parseTime(spec: string, text: string, allow24: boolean): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text);
  if (!m) throw new WindowError(spec, `time ${JSON.stringify(text)} is not HH:MM`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59 || h > 24 || (h === 24 && (min !== 0 || !allow24)))
    throw new WindowError(spec, `time ${JSON.stringify(text)} is out of range`);
  return h * 60 + min;
}

function parseDay(spec: string, text: string): number {
  const i = DAYS.indexOf(text.toLowerCase().slice(0, 3) as (typeof DAYS)[number]);
  const full = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
  if (i < 0 || !(text.length === 3 || full[i] === text.toLowerCase()))
    throw new WindowError(spec, `unknown day ${JSON.stringify(text)} (use Mon, Tue, ... Sun)`);
  return i;
}

function parseDays(spec: string, text: string): number[] {
  if (text.toLowerCase() === 'daily') return [0, 1, 2, 3, 4, 5, 6];
  const days = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b, extra] = part.split('-');
    if (extra !== undefined || !a) throw new WindowError(spec, `days ${JSON.stringify(part)} are not DAY or DAY-DAY`);
    const from = parseDay(spec, a);
    const to = b === undefined ? from : parseDay(spec, b);
    for (let d = from; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === to) break;
    }
  }
  return [...days].sort((x, y) => x - y);
}

function checkZone(spec: string, zone: string): string {
  if (zone.toUpperCase() === 'UTC' || zone.toUpperCase() === 'Z') return 'UTC';
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    throw new WindowError(spec, `unknown time zone ${JSON.stringify(zone)} (use UTC or a name like Europe/Oslo)`);
  }
}

/** Parse a window; the error names the part that is wrong. */
export function parseWindow(spec: string): MaintenanceWindow {
  if (spec.length > MAX_WINDOW_SPEC_LENGTH)
    throw new WindowError(spec, `longer than ${MAX_WINDOW_SPEC_LENGTH} characters`);
  if (/[^\x20-\x7e]/.test(spec)) throw new WindowError(spec, 'only printable ASCII is allowed');
  const parts = spec.split(';').map((p) => p.trim());
  if (parts.length > MAX_RANGES) throw new WindowError(spec, `more than ${MAX_RANGES} ranges`);
  let zone = 'UTC';
  const ranges: WindowRange[] = [];
  parts.forEach((part, i) => {
    const words = part.split(/\s+/).filter(Boolean);
    if (i === parts.length - 1 && words.length > 1 && !/\d:\d/.test(words[words.length - 1]!))
      zone = checkZone(spec, words.pop()!);
    if (words.length === 0) throw new WindowError(spec, `range ${i + 1} is empty`);
    if (words.length > 2) throw new WindowError(spec, `range ${JSON.stringify(part)} is not [DAYS] HH:MM-HH:MM`);
    const times = words[words.length - 1]!;
    const days = words.length === 2 ? parseDays(spec, words[0]!) : [0, 1, 2, 3, 4, 5, 6];
    const [s, e, extra] = times.split('-');
    if (!s || !e || extra !== undefined)
      throw new WindowError(spec, `times ${JSON.stringify(times)} are not HH:MM-HH:MM`);
    const start = parseTime(spec, s, false);
    const end = parseTime(spec, e, true);
    if (start === end) throw new WindowError(spec, `range ${JSON.stringify(part)} is empty (start equals end)`);
    ranges.push({ days, start, end });
  });
  return { spec, zone, ranges };
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Local weekday (0 = Sunday) and minutes after midnight of an instant in a zone. */
function localTime(zone: string, at: number): { day: number; minute: number } {
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const p of formatter(zone).formatToParts(new Date(at))) {
    if (p.type === 'weekday') day = DAYS.indexOf(p.value.toLowerCase() as (typeof DAYS)[number]);
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day, minute: hour * 60 + minute };
}

function openAtLocal(w: MaintenanceWindow, t: { day: number; minute: number }): boolean {
  for (const r of w.ranges) {
    if (r.end > r.start) {
      if (r.days.includes(t.day) && t.minute >= r.start && t.minute < r.end) return true;
    } else {
      // Crosses midnight: open from start on its day, and until end on the day after.
      if (r.days.includes(t.day) && t.minute >= r.start) return true;
      if (r.days.includes((t.day + 6) % 7) && t.minute < r.end) return true;
    }
  }
  return false;
}

/** Is the window open at this instant (ms since the epoch, on the vessel's corrected clock)? */
export function windowOpen(w: MaintenanceWindow, at: number): boolean {
  return openAtLocal(w, localTime(w.zone, at));
}

/**
 * When the window next changes state after `at`: the opening if it is closed, the closing if it is open
 * (ms, minute precision), or null if that does not happen within a week (a window open all week).
 */
export function nextWindowChange(w: MaintenanceWindow, at: number): number | null {
  const open = windowOpen(w, at);
  const start = Math.floor(at / 60_000) * 60_000;
  for (let i = 1; i <= LOOKAHEAD_MINUTES; i++) {
    const t = start + i * 60_000;
    if (windowOpen(w, t) !== open) return t;
  }
  return null;
}
