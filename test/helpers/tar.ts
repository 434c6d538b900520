import { createHash } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import { chunkAll } from '../../shared/content/chunking.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';
import { encodeLayerIndex } from '../../shared/content/layer-index.js';
import type { ChunkRef, ReleaseManifest } from '../../shared/protocol/manifest.js';
import { TarSplitter } from '../../shared/content/tar-split.js';

export interface TarEntrySpec {
  name: string;
  type?: '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'L';
  data?: Buffer;
  linkname?: string;
  mode?: number;
  /** Seconds since the epoch; a fixed time when absent. */
  mtime?: number;
}

/** A ustar header for one entry (names up to 100 bytes; longer ones go through 'L' or 'x' entries). */
export function tarHeader(e: TarEntrySpec, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name.slice(0, 100), 0, 'utf8');
  h.write(`${(e.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(e.mtime ?? 0o14712345670).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write(e.type ?? '0', 156);
  if (e.linkname) h.write(e.linkname, 157, 'utf8');
  h.write('ustar\0', 257);
  h.write('00', 263);
  const sum = h.reduce((a, b) => a + b, 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** A tar archive of the given entries, ended by two zero blocks. */
export function tarOf(entries: TarEntrySpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    parts.push(tarHeader(e, data.byteLength), data, Buffer.alloc((512 - (data.byteLength % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A pax 'x' entry carrying the given records, for the entry that follows it. */
export function paxEntry(records: Record<string, string>): TarEntrySpec {
  let text = '';
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
    text += `${len}${body}`;
  }
  return { name: 'PaxHeaders/x', type: 'x', data: Buffer.from(text) };
}

/**
 * Store a layer tar the way the publisher does (tar-split, content chunks, index blob) in each store, and
 * return the manifest's layer entry and the content chunk refs.
 */
export function storeLayer(
  tar: Buffer,
  ...stores: ChunkStore[]
): { layer: ReleaseManifest['images'][string]['layers'][number]; content: ChunkRef[]; index: ChunkRef } {
  const meta: Buffer[] = [];
  const body: Buffer[] = [];
  const sp = new TarSplitter({ meta: (b) => meta.push(Buffer.from(b)), content: (b) => body.push(Buffer.from(b)) });
  sp.push(tar);
  sp.end();
  const put = (digest: string, data: Buffer): ChunkRef => {
    const comp = brotliCompressSync(data);
    for (const s of stores) s.put(digest, comp, data.byteLength);
    return [digest, data.byteLength, comp.byteLength];
  };
  const content = chunkAll(Buffer.concat(body)).map((c) => put(c.digest, c.data));
  const blob = encodeLayerIndex({
    meta: Buffer.concat(meta),
    contentSize: content.reduce((a, c) => a + c[1], 0),
    chunks: content.map((c) => [c[0], c[1]]),
  });
  const index = put(createHash('sha256').update(blob).digest('hex'), blob);
  return {
    layer: { diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}`, size: tar.byteLength, index },
    content,
    index,
  };
}
