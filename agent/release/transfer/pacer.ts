// The bandwidth cap is promised over any 10 s.
const CAP_WINDOW_MS = 10_000;
// Under a cap, no range request smaller than this (a request costs a round trip of headers).
const MIN_GRANT_BYTES = 16 * 1024;

/**
 * The bandwidth cap, kept over any 10 s: each range request is granted only as many bytes as the requests
 * of the last 10 s leave room for (across packs and tiers), and waits when there is no room. The link
 * delivers a request's bytes right after it starts, so no 10-second span carries more than the cap.
 */
export class Pacer {
  private granted: { at: number; bytes: number }[] = [];
  private readonly budget: number;

  /** bytesPerSecond 0: no cap, every request is granted what it asks. */
  constructor(private readonly bytesPerSecond: number) {
    this.budget = Math.max(MIN_GRANT_BYTES, Math.floor((bytesPerSecond * CAP_WINDOW_MS) / 1000));
  }

  get capped(): boolean {
    return this.bytesPerSecond > 0;
  }

  async grant(want: number): Promise<number> {
    if (this.bytesPerSecond <= 0) return want;
    for (;;) {
      const now = Date.now();
      this.granted = this.granted.filter((g) => g.at > now - CAP_WINDOW_MS);
      const room = this.budget - this.granted.reduce((a, g) => a + g.bytes, 0);
      if (room >= Math.min(want, MIN_GRANT_BYTES)) {
        const bytes = Math.min(want, room);
        this.granted.push({ at: now, bytes });
        return bytes;
      }
      await new Promise((r) => setTimeout(r, this.granted[0]!.at + CAP_WINDOW_MS - now + 1));
    }
  }
}
