import { describeFetchError, HubUnreachableError } from '../../hub-client.js';

// A connection that delivers nothing for this long is dead even if TCP has not noticed (a black hole);
// the agent's stallSeconds overrides it.
const STALL_MS = 60_000;
// Less than this per second of a stall window (1 KB/s) aborts the request; the slowest satellite link
// does 25 KB/s.
const MIN_BYTES_PER_STALL_SECOND = 1024;

/** No byte for `ms`, or fewer than `minBytes` (default 1 KB a second) in any `ms`: the response is dead. */
export interface StallLimits {
  ms: number;
  minBytes?: number;
}

/**
 * Watches one response: aborts it on a stall, or on a trickle (a server that drips a byte every few
 * seconds is as dead as a silent one), or when the outer signal aborts.
 */
class StallWatchdog {
  received = 0;
  stalled: string | undefined;
  private readonly ac = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private lastByteAt = Date.now();
  private readonly marks: { at: number; got: number }[] = [];
  // Bytes received when a stall was first suspected; undefined while none is.
  private suspect: number | undefined;
  private readonly onOuterAbort = () => this.ac.abort();

  constructor(
    private readonly limits: { ms: number; minBytes: number },
    private readonly outer?: AbortSignal,
  ) {
    this.timer = setInterval(() => this.check(), Math.min(1000, limits.ms / 4));
    outer?.addEventListener('abort', this.onOuterAbort);
  }

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  bytes(n: number): void {
    this.lastByteAt = Date.now();
    this.received += n;
  }

  abort(): void {
    this.ac.abort();
  }

  stop(): void {
    clearInterval(this.timer);
    this.outer?.removeEventListener('abort', this.onOuterAbort);
  }

  /**
   * A verdict takes two looks in separate turns of the event loop. After the process was held up (a
   * loaded machine, a long sync step) timers run before pending I/O is read: judged on the first look,
   * bytes already waiting in the socket would be thrown away with it, and the link pays for them again.
   */
  private check(): void {
    const { ms, minBytes } = this.limits;
    const now = Date.now();
    this.marks.push({ at: now, got: this.received });
    while (this.marks.length && this.marks[0]!.at < now - ms) this.marks.shift();
    const windowBytes = this.received - (this.marks[0]?.got ?? 0);
    let verdict: string | undefined;
    if (now - this.lastByteAt > ms) verdict = `nothing received for ${Math.round((now - this.lastByteAt) / 1000)} s`;
    else if (now - this.startedAt > ms && windowBytes < minBytes)
      verdict = `${windowBytes} bytes in the last ${ms / 1000} s`;
    if (!verdict) {
      this.suspect = undefined;
      return;
    }
    if (this.suspect !== undefined) return;
    this.suspect = this.received;
    // Let the poll phase read what the socket holds, then look again.
    setImmediate(() => setImmediate(() => this.confirm(verdict)));
  }

  private confirm(verdict: string): void {
    if (this.suspect === undefined || this.ac.signal.aborted) return;
    if (this.received !== this.suspect) {
      // Bytes were waiting: not a stall after all (a trickle is judged again on the next look).
      this.suspect = undefined;
      return;
    }
    this.stalled = verdict;
    this.ac.abort();
  }
}

/**
 * Open a response and stream its body to onPiece under the stall watchdog; onPiece answering false stops
 * reading. A stall, a trickle or a cut surfaces as HubUnreachableError (the caller resumes at the byte).
 */
export async function streamResponse(
  opts: { stall?: StallLimits; signal?: AbortSignal },
  open: (signal: AbortSignal) => Promise<Response>,
  onPiece: (b: Buffer) => boolean,
): Promise<void> {
  const ms = opts.stall?.ms ?? STALL_MS;
  const minBytes = opts.stall?.minBytes ?? (ms / 1000) * MIN_BYTES_PER_STALL_SECOND;
  const dog = new StallWatchdog({ ms, minBytes }, opts.signal);
  try {
    const res = await open(dog.signal).catch((err: unknown) => {
      throw dog.stalled ? new HubUnreachableError(`no answer from the hub: stalled (${dog.stalled}); will retry`) : err;
    });
    // What the sink throws (a disk too full for the content) is its own error, not a cut link.
    let sinkError: { err: unknown } | undefined;
    try {
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        dog.bytes(piece.byteLength);
        let more: boolean;
        try {
          more = onPiece(Buffer.from(piece));
        } catch (err) {
          sinkError = { err };
          throw err;
        }
        if (!more) {
          // Past the declared length: whatever else the hub sends is not read.
          dog.abort();
          return;
        }
      }
    } catch (err) {
      if (sinkError) throw sinkError.err;
      throw new HubUnreachableError(
        `pack cut after ${dog.received} bytes: ` +
          `${dog.stalled ? `stalled (${dog.stalled}); dropped, will resume at the byte` : describeFetchError(err)}`,
      );
    }
  } finally {
    dog.stop();
  }
}
