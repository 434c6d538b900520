import { TenderError } from '../errors.js';

// Hand-written on purpose: the tar bytes must be reproduced exactly (layer diff IDs) and every entry
// checked against our path rules before anything is written; tar libraries normalise or extract.

export class TarError extends TenderError {}

export interface TarEntry {
  name: string;
  size: number;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
}

/**
 * A streaming tar reader (ustar, with pax and GNU long names): feed it the bytes of a tar as they come;
 * for each entry it calls onEntry, then onData with the entry's content in pieces, then onEnd. Memory use
 * stays at one piece, so a `docker save` of gigabytes streams through.
 */
export class TarReader {
  private buf: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private padding = 0;
  private current?: TarEntry;
  private longName?: string;
  private paxPath?: string;
  private collecting?: { kind: 'L' | 'x'; parts: Buffer[] };
  private ended = false;

  constructor(
    private readonly handlers: {
      onEntry(e: TarEntry): void;
      onData(piece: Buffer): void;
      onEnd(): void;
    },
  ) {}

  push(data: Buffer): void {
    if (this.ended) return;
    this.buf = this.buf.byteLength ? Buffer.concat([this.buf, data]) : data;
    for (;;) {
      if (this.remaining > 0) {
        if (this.buf.byteLength === 0) return;
        const n = Math.min(this.remaining, this.buf.byteLength);
        const piece = this.buf.subarray(0, n);
        if (this.collecting) this.collecting.parts.push(Buffer.from(piece));
        else this.handlers.onData(piece);
        this.buf = this.buf.subarray(n);
        this.remaining -= n;
        if (this.remaining > 0) return;
        this.finishEntry();
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, this.buf.byteLength);
        this.buf = this.buf.subarray(n);
        this.padding -= n;
        if (this.padding > 0) return;
      }
      if (this.buf.byteLength < 512) return;
      const header = this.buf.subarray(0, 512);
      this.buf = this.buf.subarray(512);
      if (header.every((b) => b === 0)) {
        this.ended = true;
        return;
      }
      this.startEntry(header);
    }
  }

  private startEntry(h: Buffer): void {
    const sum = h.reduce((a, b, i) => a + (i >= 148 && i < 156 ? 32 : b), 0);
    const stored = parseInt(h.subarray(148, 156).toString('ascii').replace(/\0.*$/, '').trim(), 8);
    if (sum !== stored) throw new TarError('tar header checksum mismatch');
    const size = parseOctal(h.subarray(124, 136));
    const flag = String.fromCharCode(h[156]!);
    let name = cstr(h.subarray(0, 100));
    const prefix = h.subarray(257, 262).toString('ascii') === 'ustar' ? cstr(h.subarray(345, 500)) : '';
    if (prefix) name = `${prefix}/${name}`;
    this.remaining = size;
    this.padding = (512 - (size % 512)) % 512;
    if (flag === 'L' || flag === 'x' || flag === 'g') {
      this.collecting = { kind: flag === 'L' ? 'L' : 'x', parts: [] };
      if (size === 0) this.finishEntry();
      return;
    }
    if (this.paxPath) name = this.paxPath;
    else if (this.longName) name = this.longName;
    this.paxPath = undefined;
    this.longName = undefined;
    const type =
      flag === '0' || flag === '\0'
        ? 'file'
        : flag === '5'
          ? 'dir'
          : flag === '2'
            ? 'symlink'
            : flag === '1'
              ? 'hardlink'
              : 'other';
    this.current = { name, size, type };
    this.handlers.onEntry(this.current);
    if (size === 0) this.finishEntry();
  }

  private finishEntry(): void {
    if (this.collecting) {
      const text = Buffer.concat(this.collecting.parts).toString('utf8');
      if (this.collecting.kind === 'L') this.longName = text.replace(/\0.*$/s, '');
      else {
        for (const rec of text.split('\n')) {
          const m = /^\d+ path=(.*)$/.exec(rec);
          if (m) this.paxPath = m[1];
        }
      }
      this.collecting = undefined;
      return;
    }
    if (this.current) {
      this.current = undefined;
      this.handlers.onEnd();
    }
  }
}

function cstr(b: Buffer): string {
  const i = b.indexOf(0);
  return b.subarray(0, i < 0 ? b.byteLength : i).toString('utf8');
}

function parseOctal(b: Buffer): number {
  // GNU base-256 for sizes of 8 GiB and more.
  if (b[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < b.byteLength; i++) n = n * 256 + b[i]!;
    return n;
  }
  const s = cstr(b).trim();
  return s ? parseInt(s, 8) : 0;
}
