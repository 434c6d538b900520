import { z } from 'zod';

/**
 * A release download as the vessel last saw it, kept in the agent's state (`download.progress`) so that
 * `tender status`, the crew console and the status report for the hub read the same figures. Bytes are
 * the raw (unpacked) size of the chunks the release lacked when the download began: what is on board
 * already is not counted as progress, and the total does not change as packs are cut and resumed.
 */
export const downloadProgressSchema = z.strictObject({
  app: z.string().max(64),
  version: z.string().max(128),
  /** Raw bytes of the missing chunks stored so far. */
  done: z.number().int().min(0),
  /** Raw bytes of the chunks missing when the download began (both tiers, once the second is known). */
  total: z.number().int().min(0),
  /** Bytes that came down the link so far for them (compressed, with pack headers). */
  linkBytes: z.number().int().min(0),
  /** Link bytes per second over the last RATE_WINDOW_MS. */
  bytesPerSecond: z.number().min(0),
  startedAt: z.number(),
  /** When these figures were taken (ms, the vessel's clock). */
  at: z.number(),
});
export type DownloadProgress = z.infer<typeof downloadProgressSchema>;

/** What the transfer reports while it runs. */
export interface TransferCounts {
  done: number;
  total: number;
  linkBytes: number;
}

const RATE_WINDOW_MS = 20_000;
/** Figures older than this while a download is still the pending step: it is not moving (a cut link). */
export const PROGRESS_STALE_MS = 15_000;

/** Bytes per second over a sliding window: a satellite link's rate swings, the last 20 s is what counts. */
export class RateMeter {
  private samples: [number, number][] = [];

  constructor(private readonly windowMs = RATE_WINDOW_MS) {}

  /** Record the running byte count at time `at`; returns bytes per second over the window. */
  sample(bytes: number, at: number): number {
    this.samples.push([at, bytes]);
    while (this.samples.length > 2 && this.samples[1]![0] <= at - this.windowMs) this.samples.shift();
    const [t0, b0] = this.samples[0]!;
    return at > t0 ? (Math.max(0, bytes - b0) * 1000) / (at - t0) : 0;
  }
}

export interface DownloadView {
  release: string;
  /** 0–100, rounded down: 100 only when every byte is on board. */
  percent: number;
  done: number;
  total: number;
  bytesPerSecond: number;
  /** Seconds left at the current rate, or null when nothing is moving. */
  etaSeconds: number | null;
  /** When the figures stopped moving (ISO), or null while they are fresh. */
  staleSince: string | null;
}

/** The figures as a person reads them: percent, rate and time left, or since when nothing moved. */
export function downloadView(p: DownloadProgress, now: number): DownloadView {
  const stale = now - p.at > PROGRESS_STALE_MS;
  const left = Math.max(0, p.total - p.done);
  // Time left is in link bytes: the raw bytes left, at the compression seen so far, at the current rate.
  const linkPerRaw = p.done > 0 ? p.linkBytes / p.done : 1;
  const rate = stale ? 0 : p.bytesPerSecond;
  return {
    release: `${p.app}@${p.version}`,
    percent: p.total > 0 ? Math.floor((100 * Math.min(p.done, p.total)) / p.total) : 100,
    done: p.done,
    total: p.total,
    bytesPerSecond: rate,
    etaSeconds: rate > 0 ? (left * linkPerRaw) / rate : left === 0 ? 0 : null,
    staleSince: stale ? new Date(p.at).toISOString() : null,
  };
}
