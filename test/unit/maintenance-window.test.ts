import { describe, expect, it } from 'vitest';
import { nextWindowChange, parseWindow, windowOpen, WindowError } from '../../shared/protocol/maintenance-window.js';

const at = (iso: string) => Date.parse(iso);

describe('maintenance windows', () => {
  it('opens Mon-Thu 02:00-04:00 UTC only inside those hours on those days', () => {
    const w = parseWindow('Mon-Thu 02:00-04:00 UTC');
    // 2026-12-07 is a Monday.
    expect(windowOpen(w, at('2026-12-07T01:59:00Z'))).toBe(false);
    expect(windowOpen(w, at('2026-12-07T02:00:00Z'))).toBe(true);
    expect(windowOpen(w, at('2026-12-07T03:59:59Z'))).toBe(true);
    expect(windowOpen(w, at('2026-12-07T04:00:00Z'))).toBe(false);
    expect(windowOpen(w, at('2026-12-10T02:30:00Z'))).toBe(true); // Thursday
    expect(windowOpen(w, at('2026-12-11T02:30:00Z'))).toBe(false); // Friday
    expect(windowOpen(w, at('2026-12-13T02:30:00Z'))).toBe(false); // Sunday
  });

  it('a range that crosses midnight opens on its day and closes the next morning', () => {
    const w = parseWindow('Fri 22:00-02:00 UTC');
    expect(windowOpen(w, at('2026-12-11T21:59:00Z'))).toBe(false); // Friday
    expect(windowOpen(w, at('2026-12-11T23:00:00Z'))).toBe(true);
    expect(windowOpen(w, at('2026-12-12T01:30:00Z'))).toBe(true); // Saturday morning
    expect(windowOpen(w, at('2026-12-12T02:00:00Z'))).toBe(false);
    expect(windowOpen(w, at('2026-12-12T23:00:00Z'))).toBe(false); // Saturday night is not Friday
    // The early hours of Friday belong to Thursday's range, which does not exist.
    expect(windowOpen(w, at('2026-12-11T01:00:00Z'))).toBe(false);
  });

  it('several ranges, day lists, wrap over the week end and daily ranges', () => {
    const w = parseWindow('Sat,Sun 10:00-12:00; Fri-Mon 23:00-23:30 UTC');
    expect(windowOpen(w, at('2026-12-12T11:00:00Z'))).toBe(true); // Saturday
    expect(windowOpen(w, at('2026-12-14T11:00:00Z'))).toBe(false); // Monday morning
    expect(windowOpen(w, at('2026-12-14T23:10:00Z'))).toBe(true); // Monday, Fri-Mon wraps
    expect(windowOpen(w, at('2026-12-15T23:10:00Z'))).toBe(false); // Tuesday
    const daily = parseWindow('00:00-24:00');
    expect(daily.zone).toBe('UTC');
    expect(windowOpen(daily, at('2026-12-15T13:37:00Z'))).toBe(true);
    expect(nextWindowChange(daily, at('2026-12-15T13:37:00Z'))).toBeNull();
  });

  it('honours a named time zone, including its daylight saving time', () => {
    const w = parseWindow('Mon-Thu 02:00-04:00 Europe/Oslo');
    // Winter: Oslo is UTC+1, so 02:00 local is 01:00 UTC.
    expect(windowOpen(w, at('2026-12-07T01:00:00Z'))).toBe(true);
    expect(windowOpen(w, at('2026-12-07T03:00:00Z'))).toBe(false);
    // Summer: UTC+2, so 02:00 local is 00:00 UTC.
    expect(windowOpen(w, at('2026-06-08T00:30:00Z'))).toBe(true);
    expect(windowOpen(w, at('2026-06-08T02:30:00Z'))).toBe(false);
  });

  it('says when a closed window opens next and when an open one closes', () => {
    const w = parseWindow('Mon-Thu 02:00-04:00 UTC');
    expect(nextWindowChange(w, at('2026-12-11T12:00:00Z'))).toBe(at('2026-12-14T02:00:00Z')); // Fri -> Mon
    expect(nextWindowChange(w, at('2026-12-07T02:30:20Z'))).toBe(at('2026-12-07T04:00:00Z'));
  });

  it.each([
    ['Mon-Thx 02:00-04:00 UTC', 'unknown day "Thx"'],
    ['Mon-Thu 2:00-25:00 UTC', 'time "25:00" is out of range'],
    ['Mon-Thu 02:00-02:00 UTC', 'is empty'],
    ['Mon-Thu 02:00 UTC', 'times "02:00" are not HH:MM-HH:MM'],
    ['Mon-Thu 02:00-04:00 Mars/Base', 'unknown time zone "Mars/Base"'],
    ['Mon-Thu 02:60-04:00', 'time "02:60" is out of range'],
    ['Mon-Thu 24:00-04:00', 'time "24:00" is out of range'],
    ['Mon Tue 02:00-04:00 UTC', 'is not [DAYS] HH:MM-HH:MM'],
    ['; Mon 02:00-03:00', 'range 1 is empty'],
    ['Mon 02:00-03:00 Europe/Oslo\u0000', 'only printable ASCII'],
    ['x'.repeat(300), 'longer than 256 characters'],
  ])('refuses %j, naming the part that is wrong', (spec, why) => {
    expect(() => parseWindow(spec)).toThrow(WindowError);
    expect(() => parseWindow(spec)).toThrow(why);
  });
});
