import { describe, expect, it } from 'vitest';
import { encodeFlags, statusFlagsOf } from '../../hub/page/facts.js';
import { LinkMeter } from '../../agent/link-meter.js';
import type { VesselStatusReport } from '../../shared/protocol/bodies.js';

const base: VesselStatusReport = {
  agentVersion: '1',
  current: '1.0.0',
  previous: null,
  pending: null,
  held: false,
  rootVersion: 1,
  backlog: 0,
  services: [{ name: 'web', state: 'running' }],
  bootId: 'b',
  reportedAt: '2026-01-01T00:00:00Z',
};

describe('status facts', () => {
  it('flags a service not running as failing, a hold as held, a pending release by why it waits', () => {
    expect(statusFlagsOf(base)).toEqual([]);
    expect(statusFlagsOf({ ...base, services: [{ name: 'web', state: 'missing' }] })).toEqual(['failing']);
    expect(statusFlagsOf({ ...base, services: [{ name: 'web', state: 'exited', exitCode: 1 }] })).toEqual(['failing']);
    const app = { app: 'a', live: '1', desired: '2', held: false };
    expect(statusFlagsOf({ ...base, apps: [{ ...app, pending: { version: '2', state: 'downloading' } }] })).toEqual([
      'updating',
    ]);
    expect(
      statusFlagsOf({ ...base, apps: [{ ...app, pending: { version: '2', state: 'waiting-for-window' } }] }),
    ).toEqual(['window']);
    expect(
      statusFlagsOf({
        ...base,
        hold: { app: 'a', sequence: 2 },
        apps: [{ ...app, held: true, pending: { version: '2', state: 'held' } }],
      }),
    ).toEqual(['held']);
    expect(statusFlagsOf({ ...base, apps: [{ ...app, pending: { version: '2', state: 'refused' } }] })).toEqual([
      'failing',
    ]);
    expect(encodeFlags(['failing', 'held'])).toBe(',failing,held,');
    expect(encodeFlags([])).toBe('');
  });

  it('meters a day of exchanges in hourly buckets and a median round trip', () => {
    let now = 0;
    const m = new LinkMeter(undefined, () => now);
    m.record({ up: 300, down: 200, rttMs: 40 });
    m.record({ up: 300, down: 200, rttMs: 900 });
    m.record({ up: 300, down: 0, failed: true });
    m.record({ up: 300, down: 200, rttMs: 50 });
    expect(m.summary()).toEqual({ bytesUp24h: 1200, bytesDown24h: 600, requests24h: 4, failures24h: 1, rttMs: 50 });
    now = 23 * 3600_000;
    m.record({ up: 10, down: 10 });
    expect(m.summary().bytesUp24h).toBe(1210);
    // A day later the first hour has gone; a restart keeps what was stored.
    now = 24 * 3600_000 + 1;
    const again = new LinkMeter(m.snapshot(), () => now);
    expect(again.summary()).toMatchObject({ bytesUp24h: 10, requests24h: 1 });
  });
});
