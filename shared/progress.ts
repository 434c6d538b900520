/**
 * What a person waiting sees. On a terminal one line updates in place; in a log (not a TTY) a plain line
 * every `everyMs` at most, and always the last one, so a log has the progress without a line per chunk.
 */
export interface Progress {
  /** The current state of a long step (replaced by the next). */
  update(text: string): void;
  /** A line that stays (a step done, a note). */
  line(text: string): void;
  /** The long step ended: its last state stays on screen / in the log. */
  end(): void;
}

export function progressTo(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  opts: { everyMs?: number; now?: () => number } = {},
): Progress {
  const everyMs = opts.everyMs ?? 5_000;
  const now = opts.now ?? Date.now;
  const tty = out.isTTY === true;
  let shown = '';
  let pending = '';
  let lastAt = -Infinity;
  const clear = () => {
    if (tty && shown) out.write('\r\x1b[2K');
    shown = '';
  };
  return {
    update(text) {
      if (tty) {
        out.write(`\r\x1b[2K${text}`);
        shown = text;
        return;
      }
      pending = text;
      if (now() - lastAt >= everyMs) {
        out.write(`${text}\n`);
        lastAt = now();
        pending = '';
      }
    },
    line(text) {
      clear();
      if (pending) out.write(`${pending}\n`);
      pending = '';
      out.write(`${text}\n`);
    },
    end() {
      if (tty && shown) out.write('\n');
      else if (pending) out.write(`${pending}\n`);
      shown = '';
      pending = '';
    },
  };
}

/** 12.3 MB, 1.2 GB: sizes as a person reads them. */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** "12.3 of 40.0 MB (31 %), 1.2 MB/s, 23 s left": a transfer's state from its bytes and its start. */
export function transferLine(what: string, done: number, total: number, startedAt: number, at = Date.now()): string {
  const secs = Math.max(0.001, (at - startedAt) / 1000);
  const rate = done / secs;
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
  const left = rate > 0 && total > done ? `, ${formatSeconds((total - done) / rate)} left` : '';
  return `${what}: ${formatBytes(done)} of ${formatBytes(total)} (${pct} %), ${formatBytes(rate)}/s${left}`;
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
