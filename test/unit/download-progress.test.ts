import { describe, expect, it } from 'vitest';
import {
  PROGRESS_STALE_MS,
  RateMeter,
  downloadView,
  type DownloadProgress,
} from '../../agent/release/transfer/progress.js';
import { formatDownload } from '../../agent/status.js';
import { reportFingerprintPart, reportedProgress } from '../../agent/status-report.js';
import type { VesselStatusReport } from '../../shared/protocol/bodies.js';

const at = 1_800_000_000_000;
const p = (over: Partial<DownloadProgress> = {}): DownloadProgress => ({
  app: 'sms',
  version: '1.0.2',
  done: 4_000_000,
  total: 10_000_000,
  linkBytes: 2_000_000,
  bytesPerSecond: 10_000,
  startedAt: at - 200_000,
  at,
  ...over,
});

describe('download progress figures', () => {
  it('measures the rate over the last 20 s, not since the start', () => {
    const m = new RateMeter();
    expect(m.sample(0, at)).toBe(0);
    // 100 kB/s for 30 s, then 10 kB/s for 30 s: the window sees only the slow part.
    let bytes = 0;
    for (let s = 1; s <= 30; s++) m.sample((bytes += 100_000), at + s * 1000);
    let rate = 0;
    for (let s = 31; s <= 60; s++) rate = m.sample((bytes += 10_000), at + s * 1000);
    expect(rate).toBeCloseTo(10_000, -2);
  });

  it('gives percent and time left in link bytes at the compression seen so far', () => {
    const v = downloadView(p(), at + 1000);
    expect(v.release).toBe('sms@1.0.2');
    expect(v.percent).toBe(40);
    // 6 MB raw left, at 0.5 link bytes per raw byte, at 10 kB/s: 300 s.
    expect(v.etaSeconds).toBeCloseTo(300, 5);
    expect(v.staleSince).toBeNull();
    expect(formatDownload(v)).toBe('sms@1.0.2: 40 % (4.0 MB of 10.0 MB), 10.0 kB/s, about 5 min 0 s left');
  });

  it('says since when a download stopped moving, with no rate or time left made up', () => {
    const v = downloadView(p(), at + PROGRESS_STALE_MS + 1);
    expect(v.bytesPerSecond).toBe(0);
    expect(v.etaSeconds).toBeNull();
    expect(v.staleSince).toBe(new Date(at).toISOString());
    expect(formatDownload(v)).toMatch(/^sms@1\.0\.2: 40 % \(4\.0 MB of 10\.0 MB\), not moving since .* UTC$/);
  });

  it('never shows 100 % before the last byte, nor more than 100', () => {
    expect(downloadView(p({ done: 9_999_999 }), at).percent).toBe(99);
    expect(downloadView(p({ done: 10_000_000 }), at).percent).toBe(100);
    expect(downloadView(p({ done: 0, total: 0 }), at).percent).toBe(100);
  });

  it('reports to the hub in tenths, so a status report goes per tenth and not per poll', () => {
    expect(reportedProgress(p({ done: 4_321_000 }), at)).toEqual({
      done: 4_000_000,
      total: 10_000_000,
      bytesPerSecond: 10_000,
      etaSeconds: expect.any(Number),
    });
    expect(reportedProgress(p({ done: 10_000_000 }), at).done).toBe(10_000_000);
    // Not moving: no rate, no time left.
    expect(reportedProgress(p(), at + PROGRESS_STALE_MS + 1)).toEqual({ done: 4_000_000, total: 10_000_000 });
    const report = (bytesPerSecond: number, done: number) =>
      ({
        apps: [
          {
            app: 'sms',
            live: '1.0.1',
            desired: '1.0.2',
            held: false,
            pending: {
              version: '1.0.2',
              state: 'downloading',
              progress: reportedProgress(p({ bytesPerSecond, done }), at),
            },
          },
        ],
      }) as unknown as VesselStatusReport;
    const same = (a: VesselStatusReport, b: VesselStatusReport) =>
      JSON.stringify(reportFingerprintPart(a)) === JSON.stringify(reportFingerprintPart(b));
    expect(same(report(10_000, 4_100_000), report(25_000, 4_900_000))).toBe(true);
    expect(same(report(10_000, 4_900_000), report(10_000, 5_000_000))).toBe(false);
  });
});
