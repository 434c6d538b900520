import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A userland satellite link for tests and benchmarks (tc has no netem here): a TCP proxy that adds
 * one-way latency, caps bandwidth per direction, cuts connections after N bytes or every T seconds, can
 * go down (refuse and cut) or black-hole, and counts the bytes each way. A black hole is what a satellite
 * link does when it goes silent: no reset, no FIN; open connections stop moving, new ones connect and
 * hear nothing. When it ends, what was held moves on (TCP retransmits) and held connections go through.
 */
export interface LinkOptions {
  /** One-way delay added to every chunk, ms (a 700 ms round trip is 350 each way). */
  latencyMs?: number;
  /** Bytes per second per direction; 0 = unlimited. */
  bytesPerSecond?: number;
  /** Cut every connection after this many bytes downstream (server to client). */
  cutAfterBytes?: number;
  /** Rewrite downstream bytes (a man in the middle); `offset` counts this connection's bytes. */
  tamper?: (piece: Buffer, offset: number) => Buffer;
  /** See every byte as it arrives, by direction and connection (numbered from 1): a benchmark's tap. */
  observe?: (direction: 'up' | 'down', connection: number, piece: Buffer) => void;
}

export interface LinkStats {
  up: number;
  down: number;
  connections: number;
  cuts: number;
}

export class LinkSim {
  private server?: Server;
  private readonly open = new Set<Socket>();
  readonly stats: LinkStats = { up: 0, down: 0, connections: 0, cuts: 0 };
  private mode: 'up' | 'down' | 'blackhole' = 'up';
  /** Clients accepted during a black hole, put through when it ends. */
  private held: Socket[] = [];
  private flapTimer?: NodeJS.Timeout;
  port = 0;

  constructor(
    /** `localAddress`: the address the hub sees (a ship of its own, e.g. 127.0.5.N), not the proxy's. */
    private readonly target: { host: string; port: number; localAddress?: string },
    public options: LinkOptions = {},
  ) {}

  async start(port = 0): Promise<number> {
    this.server = createServer((c) => this.accept(c));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  /** up: forward; down: cut everything and refuse; blackhole: nothing moves, nothing is closed. */
  set(mode: 'up' | 'down' | 'blackhole'): void {
    const was = this.mode;
    this.mode = mode;
    if (mode === 'down') {
      this.cutAll();
      for (const c of this.held) c.destroy();
      this.held = [];
    }
    if (mode === 'blackhole') for (const s of this.open) s.pause();
    if (mode === 'up' && was === 'blackhole') {
      for (const s of this.open) s.resume();
      const held = this.held;
      this.held = [];
      for (const c of held) if (!c.destroyed) this.connect(c);
    }
  }

  cutAll(): void {
    for (const s of this.open) {
      s.destroy();
      this.stats.cuts++;
    }
    this.open.clear();
  }

  /** Alternate up and down: `upMs` up, then `downMs` down, until stopFlapping(). */
  flap(upMs: number, downMs: number): void {
    const cycle = () => {
      this.set('up');
      this.flapTimer = setTimeout(() => {
        this.set('down');
        this.flapTimer = setTimeout(cycle, downMs);
      }, upMs);
    };
    cycle();
  }

  stopFlapping(): void {
    clearTimeout(this.flapTimer);
    this.set('up');
  }

  async close(): Promise<void> {
    clearTimeout(this.flapTimer);
    // Down first, so a client reconnecting while we close is refused instead of holding the server open.
    this.mode = 'down';
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.cutAll();
    for (const c of this.held) c.destroy();
    this.held = [];
    await closed;
  }

  private accept(client: Socket): void {
    if (this.mode === 'down') {
      client.destroy();
      return;
    }
    client.on('error', () => undefined);
    if (this.mode === 'blackhole') {
      client.pause();
      this.held.push(client);
      return;
    }
    this.connect(client);
  }

  private connect(client: Socket): void {
    this.open.add(client);
    client.on('close', () => this.open.delete(client));
    const id = ++this.stats.connections;
    const upstream = createConnection(this.target);
    this.open.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      this.open.delete(upstream);
      client.destroy();
    });
    let downBytes = 0;
    this.pipe(client, upstream, id, (n) => (this.stats.up += n));
    this.pipe(
      upstream,
      client,
      id,
      (n) => {
        this.stats.down += n;
        downBytes += n;
        if (this.options.cutAfterBytes && downBytes >= this.options.cutAfterBytes) {
          this.stats.cuts++;
          client.destroy();
          upstream.destroy();
        }
      },
      true,
    );
  }

  /** Forward src to dst through a delay line and a rate limit, preserving order. */
  private pipe(src: Socket, dst: Socket, id: number, count: (n: number) => void, downstream = false): void {
    let busyUntil = 0;
    let seen = 0;
    src.on('data', (raw: Buffer) => {
      this.options.observe?.(downstream ? 'down' : 'up', id, raw);
      const chunk = downstream && this.options.tamper ? this.options.tamper(raw, seen) : raw;
      seen += raw.byteLength;
      const latency = this.options.latencyMs ?? 0;
      const rate = this.options.bytesPerSecond ?? 0;
      // Split large chunks so the rate limit is smooth at the scale of a few ms.
      const step = rate > 0 ? Math.max(512, Math.floor(rate / 50)) : chunk.byteLength;
      for (let off = 0; off < chunk.byteLength; off += step) {
        const part = chunk.subarray(off, off + step);
        const now = Date.now();
        const sendAt = Math.max(now, busyUntil);
        busyUntil = sendAt + (rate > 0 ? (part.byteLength / rate) * 1000 : 0);
        const deliverAt = busyUntil + latency;
        const wait = deliverAt - now;
        // Back-pressure: stop reading while a lot is in flight in the delay line.
        if (wait > latency + 2000) src.pause();
        setTimeout(() => {
          if (dst.destroyed) return;
          // Counted once handed to the OS: bytes still queued in the process when a cut destroys the
          // socket never reach the peer, and a count taken at write() would bill them anyway.
          dst.write(part, (err) => {
            if (!err && !dst.destroyed) count(part.byteLength);
          });
          if (src.isPaused() && this.mode !== 'blackhole' && busyUntil - Date.now() < latency + 500) src.resume();
        }, wait);
      }
    });
    src.on('end', () =>
      setTimeout(() => dst.end(), Math.max(0, busyUntil - Date.now()) + (this.options.latencyMs ?? 0)),
    );
  }
}
