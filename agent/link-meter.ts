import { z } from 'zod';

const HOUR_MS = 3600_000;
const HOURS_KEPT = 24;
const RTT_SAMPLES = 15;

export const linkMeterStateSchema = z.strictObject({
  hours: z
    .array(
      z.strictObject({
        hour: z.number().int(),
        up: z.number().int().min(0),
        down: z.number().int().min(0),
        requests: z.number().int().min(0),
        failures: z.number().int().min(0),
      }),
    )
    .max(HOURS_KEPT + 1),
  rtts: z.array(z.number().int().min(0)).max(RTT_SAMPLES),
});
export type LinkMeterState = z.infer<typeof linkMeterStateSchema>;

/**
 * What the vessel's own requests to the hub cost and how quickly they were answered: bytes up and down
 * (request line, headers and body as sent; status line, headers and body as received) in hourly buckets
 * for the last day, and the median of recent round trips of small control requests. Kept on board across
 * restarts (the sync loop stores it), reported to shore in the status report.
 */
export class LinkMeter {
  private state: LinkMeterState;

  constructor(
    initial?: LinkMeterState,
    private readonly now: () => number = Date.now,
  ) {
    this.state = initial ? structuredClone(initial) : { hours: [], rtts: [] };
  }

  private bucket() {
    const hour = Math.floor(this.now() / HOUR_MS);
    let b = this.state.hours[this.state.hours.length - 1];
    if (!b || b.hour !== hour) {
      b = { hour, up: 0, down: 0, requests: 0, failures: 0 };
      this.state.hours.push(b);
      this.state.hours = this.state.hours.filter((x) => x.hour > hour - HOURS_KEPT);
    }
    return b;
  }

  /** One exchange: bytes each way, and its round trip when it was a small control request. */
  record(e: { up: number; down: number; rttMs?: number; failed?: boolean }): void {
    const b = this.bucket();
    b.up += Math.max(0, Math.round(e.up));
    b.down += Math.max(0, Math.round(e.down));
    b.requests += 1;
    if (e.failed) b.failures += 1;
    if (e.rttMs !== undefined) {
      this.state.rtts.push(Math.max(0, Math.round(e.rttMs)));
      if (this.state.rtts.length > RTT_SAMPLES) this.state.rtts.shift();
    }
  }

  /** Totals over the last 24 hours and the median round trip. */
  summary(): {
    bytesUp24h: number;
    bytesDown24h: number;
    requests24h: number;
    failures24h: number;
    rttMs: number | null;
  } {
    const hour = Math.floor(this.now() / HOUR_MS);
    const live = this.state.hours.filter((x) => x.hour > hour - HOURS_KEPT);
    const sum = (k: 'up' | 'down' | 'requests' | 'failures') => live.reduce((a, x) => a + x[k], 0);
    const sorted = [...this.state.rtts].sort((a, b) => a - b);
    return {
      bytesUp24h: sum('up'),
      bytesDown24h: sum('down'),
      requests24h: sum('requests'),
      failures24h: sum('failures'),
      rttMs: sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : null,
    };
  }

  snapshot(): LinkMeterState {
    return structuredClone(this.state);
  }
}

/** Bytes of an HTTP/1.1 header block as it goes on the wire: "name: value\r\n" each, plus the blank line. */
export function headerBytes(headers: Iterable<[string, string]>): number {
  let n = 2;
  for (const [k, v] of headers) n += k.length + 2 + Buffer.byteLength(v) + 2;
  return n;
}
