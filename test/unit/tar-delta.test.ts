import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync, constants } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunkAll } from '../../shared/content/chunking.js';
import { encodeDelta } from '../../shared/content/delta.js';
import { encodeLayerIndex } from '../../shared/content/layer-index.js';
import {
  compressBlob,
  deltaFormatFor,
  encodeDeltaRaw,
  encodeIndexDeltaRaw,
  expandEntry,
} from '../../shared/content/solid.js';
import { applyTarDelta, encodeTarDelta, indexHeaderOffsets } from '../../shared/content/tar-delta.js';
import { TarSplitter } from '../../shared/content/tar-split.js';
import { tarOf, type TarEntrySpec } from '../helpers/tar.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const br = (b: Buffer) =>
  brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24 } })
    .byteLength;

/** A layer's index blob, as the publisher makes it. */
function indexOf(tar: Buffer): Buffer {
  const meta: Buffer[] = [];
  const body: Buffer[] = [];
  const sp = new TarSplitter({ meta: (b) => meta.push(Buffer.from(b)), content: (b) => body.push(Buffer.from(b)) });
  sp.push(tar);
  sp.end();
  const content = chunkAll(Buffer.concat(body));
  return encodeLayerIndex({
    meta: Buffer.concat(meta),
    contentSize: content.reduce((a, c) => a + c.data.byteLength, 0),
    chunks: content.map((c) => [c.digest, c.data.byteLength]),
  });
}

// An app tree as a fresh install writes it: the same files, every one with the build's mtime.
const files = Array.from({ length: 600 }, (_, i) => ({
  name: `app/node_modules/pkg${i % 40}/lib/file-${i}.js`,
  data: randomBytes(100 + ((i * 7919) % 3000)),
}));
const build = (mtime: number, edit: (f: TarEntrySpec[]) => TarEntrySpec[] = (f) => f) =>
  tarOf(edit(files.map((f, i) => ({ ...f, mtime: i % 50 === 0 ? mtime - 3 : mtime }))));
const baseIx = indexOf(build(1_796_316_152));
const targetIx = indexOf(
  build(1_796_316_155, (f) => [
    ...f.slice(0, 100),
    { name: 'app/node_modules/pkg1/lib/new.js', data: randomBytes(900) },
    { ...f[100]!, data: Buffer.concat([f[100]!.data!, Buffer.from('// edited\n')]) },
    ...f.slice(101, 599),
  ]),
);
const hints = { base: indexHeaderOffsets(baseIx), target: indexHeaderOffsets(targetIx) };

describe('layer index deltas, format 2 (tar headers with a new mtime)', () => {
  it('rebuilds a rebuilt layer index exactly, at a fraction of format 1', () => {
    expect(hints.base.length).toBe(600);
    expect(hints.target.length).toBe(600);
    const ops = encodeTarDelta(baseIx, targetIx, hints);
    expect(applyTarDelta(baseIx, ops, targetIx.byteLength).equals(targetIx)).toBe(true);
    const v1 = br(encodeDelta(baseIx, targetIx));
    // The new file, the edited one and the changed chunk digests are what is left to send.
    expect(br(ops)).toBeLessThan(v1 / 4);
    expect(br(ops)).toBeLessThan(4000);
  });

  it('is exact on anything, headers or none: other bytes, an empty base or target, a base of another layout', () => {
    const other = randomBytes(5000);
    const none = { base: [], target: [] };
    expect(applyTarDelta(baseIx, encodeTarDelta(baseIx, other, none), 5000).equals(other)).toBe(true);
    expect(applyTarDelta(Buffer.alloc(0), encodeTarDelta(Buffer.alloc(0), other, none), 5000).equals(other)).toBe(true);
    expect(applyTarDelta(baseIx, encodeTarDelta(baseIx, Buffer.alloc(0), none), 0).byteLength).toBe(0);
    // Hints that point at bytes which are not headers (or past the end) change the ops, never the result.
    const wrong = { base: [0, 8, 100_000_000], target: [3, 700, 100_000_000] };
    expect(applyTarDelta(baseIx, encodeTarDelta(baseIx, targetIx, wrong), targetIx.byteLength).equals(targetIx)).toBe(
      true,
    );
    // A base whose checksums are written with a leading space (an old tar): no header op fits, still exact.
    const spaced = Buffer.from(baseIx);
    for (const p of hints.base) spaced.write(' ', p + 148, 'latin1');
    const ops = encodeTarDelta(spaced, targetIx, { base: hints.base, target: hints.target });
    expect(applyTarDelta(spaced, ops, targetIx.byteLength).equals(targetIx)).toBe(true);
    expect(indexHeaderOffsets(randomBytes(2000))).toEqual([]);
  });

  it('refuses a delta that builds past its cap, reaches outside its base, or uses an op it does not know', () => {
    const ops = encodeTarDelta(baseIx, targetIx, hints);
    expect(() => applyTarDelta(baseIx, ops, targetIx.byteLength - 1)).toThrow(/more than/);
    // A header op (kind 2) naming base bytes 512 past the end.
    const far = (baseIx.byteLength - 100) * 2;
    const v: number[] = [];
    for (let n = far * 4 + 2; ; n = Math.floor(n / 128)) {
      v.push(n >= 128 ? (n % 128) | 0x80 : n);
      if (n < 128) break;
    }
    expect(() => applyTarDelta(baseIx, Buffer.from([...v, 0]), 1 << 20)).toThrow(/outside its base/);
    // A header op on bytes that are no header (zeros: no octal fields).
    expect(() => applyTarDelta(Buffer.alloc(1024), Buffer.from([2, 0]), 1 << 20)).toThrow(/no octal mtime/);
    // A header op past its cap before anything is built.
    expect(() => applyTarDelta(baseIx, Buffer.from([2, 0]), 511)).toThrow(/more than 511/);
    // Kind 3 is reserved: refused by name, not guessed at.
    expect(() => applyTarDelta(baseIx, Buffer.from([3]), 1 << 20)).toThrow(/op kind 3 is not known/);
    expect(() => applyTarDelta(baseIx, Buffer.from([0x80]), 1 << 20)).toThrow(/truncated/);
    expect(() => applyTarDelta(baseIx, Buffer.from([4 * 10, 1, 2]), 1 << 20)).toThrow(/literals truncated/);
    expect(() => applyTarDelta(baseIx, Buffer.from(Array(9).fill(0xff)), 1 << 20)).toThrow(/varint too long/);
  });

  it('travels as a TNDRDL02 blob, checked against its digest; an unknown format is refused by name', async () => {
    const raw = encodeIndexDeltaRaw(baseIx, targetIx, 2);
    expect(raw.subarray(0, 8).toString('latin1')).toBe('TNDRDL02');
    const comp = await compressBlob(raw, 5);
    const sizes = new Map([[sha(targetIx), targetIx.byteLength]]);
    const held = (d: string) => (d === sha(baseIx) ? baseIx : undefined);
    expect(expandEntry(sha(raw), comp, { sizes, held })[0]!.raw.equals(targetIx)).toBe(true);
    // A delta that builds other bytes than the digest it names is refused.
    const lie = encodeIndexDeltaRaw(baseIx, targetIx, 2);
    lie.write(sha(baseIx), 40, 'hex');
    const liar = new Map([[sha(baseIx), targetIx.byteLength]]);
    expect(() => expandEntry(sha(lie), brotliCompressSync(lie), { sizes: liar, held })).toThrow(/does not match/);
    const future = Buffer.concat([Buffer.from('TNDRDL09', 'latin1'), raw.subarray(8)]);
    expect(() => expandEntry(sha(future), brotliCompressSync(future), { sizes, held })).toThrow(
      /format 09 is not one this agent applies/,
    );
    // Format 1 still applies, as an older hub sends it.
    const v1 = encodeDeltaRaw(sha(baseIx), sha(targetIx), encodeDelta(baseIx, targetIx));
    expect(expandEntry(sha(v1), brotliCompressSync(v1), { sizes, held })[0]!.raw.equals(targetIx)).toBe(true);
  });

  it('picks the newest format both sides know from what the vessel names', () => {
    expect(deltaFormatFor(undefined)).toBe(1);
    expect(deltaFormatFor('1')).toBe(1);
    expect(deltaFormatFor('1,2')).toBe(2);
    expect(deltaFormatFor(' 2 , 7')).toBe(2);
    expect(deltaFormatFor('7,x')).toBe(1);
  });
});
