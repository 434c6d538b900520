import { TenderError } from '../errors.js';

// Hand-written on purpose (see tar-reader.ts): exact bytes and our entry rules, not a library's.

/**
 * A layer tar split in two (as tar-split does): the *meta* stream (every header block, pax and long-name
 * data, padding and the end-of-archive blocks, byte for byte) and the *content* stream (the bodies of
 * regular files, back to back). Content is what gets chunked and shared between releases; a fresh rebuild
 * that only changes timestamps changes the meta stream and no content chunk. Joining the two gives back the
 * exact tar, so the layer still hashes to its diff ID.
 *
 * Both directions walk the same headers through one `TarWalker`, which also applies the entry rules a
 * vessel needs before anything reaches Docker (ATTACKS.md 14-16).
 */
export class TarPolicyError extends TenderError {}
export class TarFormatError extends TenderError {}

const BLOCK = 512;
// Entries in one layer: a full Debian with desktop has ~200k; a million is an attack.
export const MAX_ENTRIES = 500_000;
// Path components: real trees stay under 40; 4096-deep directories are an attack.
export const MAX_DEPTH = 256;
export const MAX_PATH_BYTES = 4096;
// A pax or long-name record bigger than this is not a name.
const MAX_EXT_BYTES = 1024 * 1024;

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface WalkedEntry {
  name: string;
  type: EntryType;
  size: number;
  linkname: string;
  mode: number;
}

/** What follows a header block: `data` bytes (content for regular files, meta otherwise), then `pad`. */
export interface HeaderStep {
  end: boolean;
  data: number;
  content: boolean;
  pad: number;
  entry?: WalkedEntry;
}

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

function cstr(b: Buffer): string {
  const i = b.indexOf(0);
  return b.subarray(0, i < 0 ? b.byteLength : i).toString('utf8');
}

function octal(b: Buffer, what: string): number {
  if (b[0]! & 0x80) {
    // GNU base-256 (sizes of 8 GiB and more).
    let n = 0;
    for (let i = 1; i < b.byteLength; i++) n = n * 256 + b[i]!;
    if (!Number.isSafeInteger(n)) throw new TarFormatError(`tar header: ${what} too large`);
    return n;
  }
  const s = cstr(b).trim();
  if (s && !/^[0-7]+$/.test(s)) throw new TarFormatError(`tar header: ${what} is not octal`);
  return s ? parseInt(s, 8) : 0;
}

/** Normalise an entry name: no leading "./", no empty or "." components; refuse "..", absolute paths. */
export function safeEntryPath(raw: string, what = 'entry'): string {
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES)
    throw new TarPolicyError(`tar ${what} name longer than ${MAX_PATH_BYTES} bytes`);
  if (raw.startsWith('/'))
    throw new TarPolicyError(`tar ${what} ${JSON.stringify(raw.slice(0, 200))} is an absolute path`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new TarPolicyError(`tar ${what} ${JSON.stringify(raw.slice(0, 200))} climbs out of the image root`);
  if (parts.length > MAX_DEPTH)
    throw new TarPolicyError(
      `tar ${what} ${JSON.stringify(raw.slice(0, 80))}… is ${parts.length} directories deep (limit ${MAX_DEPTH})`,
    );
  return parts.join('/');
}

/**
 * The header-level state of one tar: feed it each header block, and the bytes of pax/long-name records it
 * asked for; it says how many bytes follow and whether they are file content. Every entry passes the rules
 * before the caller sees it.
 */
export class TarWalker {
  private paxPath?: string;
  private paxLink?: string;
  private paxSize?: number;
  private longName?: string;
  private longLink?: string;
  private ext?: { kind: 'x' | 'g' | 'L' | 'K'; parts: Buffer[]; left: number };
  private readonly symlinks = new Set<string>();
  entries = 0;
  ended = false;

  /** Is the walker collecting the data of a pax or long-name entry (meta bytes the caller must pass in)? */
  get collecting(): boolean {
    return this.ext !== undefined;
  }

  header(h: Buffer): HeaderStep {
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return { end: true, data: 0, content: false, pad: 0 };
    }
    const sum = h.reduce((a, b, i) => a + (i >= 148 && i < 156 ? 32 : b), 0);
    if (sum !== octal(h.subarray(148, 156), 'checksum')) throw new TarFormatError('tar header checksum mismatch');
    const flag = String.fromCharCode(h[156]!);
    let size = octal(h.subarray(124, 136), 'size');
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_EXT_BYTES)
        throw new TarPolicyError(`tar ${flag} record of ${size} bytes (limit ${MAX_EXT_BYTES})`);
      this.ext = { kind: flag, parts: [], left: size };
      if (size === 0) this.extEnd();
      return { end: false, data: size, content: false, pad: padOf(size) };
    }
    const type = TYPES[flag];
    if (!type)
      throw new TarPolicyError(
        `tar entry type ${JSON.stringify(flag)} is not supported (regular files, directories, links and devices only)`,
      );
    if (this.paxSize !== undefined) size = this.paxSize;
    const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? cstr(h.subarray(345, 500)) : '';
    const rawName =
      this.paxPath ?? this.longName ?? (prefix ? `${prefix}/${cstr(h.subarray(0, 100))}` : cstr(h.subarray(0, 100)));
    const linkname = this.paxLink ?? this.longLink ?? cstr(h.subarray(157, 257));
    this.paxPath = this.paxLink = this.paxSize = this.longName = this.longLink = undefined;
    if (type !== 'file' && size !== 0)
      throw new TarPolicyError(`tar ${type} ${JSON.stringify(rawName.slice(0, 200))} carries ${size} bytes of data`);
    const entry: WalkedEntry = {
      name: safeEntryPath(rawName),
      type,
      size,
      linkname,
      mode: octal(h.subarray(100, 108), 'mode'),
    };
    this.check(entry);
    return { end: false, data: size, content: type === 'file', pad: padOf(size), entry };
  }

  /** The data bytes of a pax or long-name entry, as they come. */
  extData(piece: Buffer): void {
    const e = this.ext!;
    e.parts.push(Buffer.from(piece));
    e.left -= piece.byteLength;
    if (e.left <= 0) this.extEnd();
  }

  private extEnd(): void {
    const e = this.ext!;
    this.ext = undefined;
    const text = Buffer.concat(e.parts).toString('utf8');
    if (e.kind === 'L') this.longName = text.replace(/\0.*$/s, '');
    else if (e.kind === 'K') this.longLink = text.replace(/\0.*$/s, '');
    else if (e.kind === 'x') {
      for (const [key, value] of paxRecords(text)) {
        if (key === 'path') this.paxPath = value;
        else if (key === 'linkpath') this.paxLink = value;
        else if (key === 'size') {
          if (!/^\d{1,15}$/.test(value))
            throw new TarFormatError(`tar pax size ${JSON.stringify(value.slice(0, 40))} is not a number`);
          this.paxSize = Number(value);
        }
      }
    }
    // Global ('g') records change no name or size Docker would use; they stay in the meta stream as bytes.
  }

  private check(e: WalkedEntry): void {
    if (++this.entries > MAX_ENTRIES) throw new TarPolicyError(`layer has more than ${MAX_ENTRIES} entries`);
    const parts = e.name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.symlinks.has(dir))
        throw new TarPolicyError(
          `tar entry ${JSON.stringify(e.name.slice(0, 200))} passes through the symlink ${JSON.stringify(dir)}`,
        );
    }
    if (e.type === 'hardlink') {
      if (e.linkname.startsWith('/'))
        throw new TarPolicyError(
          `tar hardlink ${JSON.stringify(e.name)} points to the absolute path ` +
            `${JSON.stringify(e.linkname.slice(0, 200))}`,
        );
      safeEntryPath(e.linkname, `hardlink target of ${e.name}`);
    }
    if (e.type === 'symlink') {
      this.symlinks.add(e.name);
      // An absolute target is resolved inside the container's root by the runtime; a relative one must
      // not climb above the image root.
      if (!e.linkname.startsWith('/')) {
        let depth = parts.length - 1;
        for (const p of e.linkname.split('/')) {
          if (p === '..') depth--;
          else if (p !== '' && p !== '.') depth++;
          if (depth < 0)
            throw new TarPolicyError(
              `tar symlink ${JSON.stringify(e.name)} -> ` +
                `${JSON.stringify(e.linkname.slice(0, 200))} points outside the image root`,
            );
        }
      }
    } else this.symlinks.delete(e.name);
    // The container gets its own /dev, so device nodes there are shadowed; anywhere else they are refused.
    if ((e.type === 'char' || e.type === 'block' || e.type === 'fifo') && !e.name.startsWith('dev/')) {
      throw new TarPolicyError(`tar ${e.type} device ${JSON.stringify(e.name)} outside /dev is refused`);
    }
  }
}

function padOf(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

function* paxRecords(text: string): Generator<[string, string]> {
  let off = 0;
  const bytes = Buffer.from(text, 'utf8');
  while (off < bytes.byteLength) {
    const sp = bytes.indexOf(0x20, off);
    const len = sp > off ? Number(bytes.subarray(off, sp).toString('ascii')) : NaN;
    if (!Number.isInteger(len) || len <= 0 || off + len > bytes.byteLength)
      throw new TarFormatError('tar pax record malformed');
    const rec = bytes.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq < 0) throw new TarFormatError('tar pax record without "="');
    yield [rec.slice(0, eq), rec.slice(eq + 1)];
    off += len;
  }
}

/**
 * Split a tar stream as it arrives: meta bytes and content bytes go to their callbacks, in order. Nothing
 * is buffered beyond one header block.
 */
export class TarSplitter {
  readonly walker = new TarWalker();
  private pending: Buffer = Buffer.alloc(0);
  private dataLeft = 0;
  private dataIsContent = false;
  private padLeft = 0;
  size = 0;

  constructor(
    private readonly out: { meta(b: Buffer): void; content(b: Buffer): void; entry?(e: WalkedEntry): void },
  ) {}

  push(data: Buffer): void {
    this.size += data.byteLength;
    let buf = this.pending.byteLength ? Buffer.concat([this.pending, data]) : data;
    this.pending = Buffer.alloc(0);
    while (buf.byteLength > 0) {
      if (this.walker.ended) {
        this.out.meta(buf);
        return;
      }
      if (this.dataLeft > 0) {
        const piece = buf.subarray(0, Math.min(this.dataLeft, buf.byteLength));
        if (this.dataIsContent) this.out.content(piece);
        else {
          this.walker.extData(piece);
          this.out.meta(piece);
        }
        this.dataLeft -= piece.byteLength;
        buf = buf.subarray(piece.byteLength);
        continue;
      }
      if (this.padLeft > 0) {
        const piece = buf.subarray(0, Math.min(this.padLeft, buf.byteLength));
        this.out.meta(piece);
        this.padLeft -= piece.byteLength;
        buf = buf.subarray(piece.byteLength);
        continue;
      }
      if (buf.byteLength < BLOCK) {
        this.pending = Buffer.from(buf);
        return;
      }
      const h = buf.subarray(0, BLOCK);
      const step = this.walker.header(h);
      this.out.meta(h);
      if (step.entry) this.out.entry?.(step.entry);
      this.dataLeft = step.data;
      this.dataIsContent = step.content;
      this.padLeft = step.pad;
      buf = buf.subarray(BLOCK);
    }
  }

  /** Check the tar ended where it should (a truncated layer is not a layer). */
  end(): void {
    if (this.pending.byteLength || this.dataLeft || this.padLeft || !this.walker.ended)
      throw new TarFormatError('tar ends in the middle of an entry');
  }
}

/**
 * Rebuild the exact tar from its meta stream and its content pieces (in order), walking the same rules.
 * Throws if either stream is short or long by a byte.
 */
export function* joinTar(meta: Buffer, content: Iterable<Buffer>): Generator<Buffer> {
  const walker = new TarWalker();
  const it = content[Symbol.iterator]();
  let carry: Buffer = Buffer.alloc(0);
  const take = function* (n: number): Generator<Buffer> {
    while (n > 0) {
      if (carry.byteLength === 0) {
        const next = it.next();
        if (next.done) throw new TarFormatError('layer content ends before its tar does');
        carry = next.value;
        continue;
      }
      const piece = carry.subarray(0, Math.min(n, carry.byteLength));
      carry = carry.subarray(piece.byteLength);
      n -= piece.byteLength;
      yield piece;
    }
  };
  let off = 0;
  const metaBytes = (n: number): Buffer => {
    if (off + n > meta.byteLength) throw new TarFormatError('layer index ends before its tar does');
    const b = meta.subarray(off, off + n);
    off += n;
    return b;
  };
  while (!walker.ended) {
    const h = metaBytes(BLOCK);
    const step = walker.header(h);
    yield h;
    if (step.content) yield* take(step.data);
    else if (step.data > 0) {
      const d = metaBytes(step.data);
      walker.extData(d);
      yield d;
    }
    if (step.pad) yield metaBytes(step.pad);
  }
  if (off < meta.byteLength) yield meta.subarray(off);
  if (carry.byteLength > 0 || !it.next().done) throw new TarFormatError('layer content runs past the end of its tar');
}

/** Does this 512-byte block start a tar (a header with a good checksum, or the end-of-archive block)? */
export function looksLikeTar(head: Buffer): boolean {
  if (head.byteLength < BLOCK) return false;
  const block = head.subarray(0, BLOCK);
  if (block.every((b) => b === 0)) return true;
  try {
    const sum = block.reduce((a, b, i) => a + (i >= 148 && i < 156 ? 32 : b), 0);
    return sum === octal(block.subarray(148, 156), 'checksum');
  } catch {
    return false;
  }
}
