import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync, constants } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { applyDelta, encodeDelta } from '../../shared/content/delta.js';
import {
  compressBlob,
  encodeDeltaRaw,
  encodeSolidRaw,
  expandEntry,
  groupChunks,
  SOLID_GROUP_BYTES,
} from '../../shared/content/solid.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('layer index deltas', () => {
  it('rebuilds the target exactly, small when the two share most bytes', () => {
    // Like tar headers of a fresh install: the same records with one field changed in each.
    const records = Array.from({ length: 400 }, () => randomBytes(512));
    const base = Buffer.concat(records);
    const target = Buffer.concat(
      records.map((r, i) => {
        const c = Buffer.from(r);
        c.write('14712345671', 136);
        return i === 200 ? Buffer.concat([c, randomBytes(700)]) : c;
      }),
    );
    const ops = encodeDelta(base, target);
    expect(applyDelta(base, ops, target.byteLength).equals(target)).toBe(true);
    expect(brotliCompressSync(ops).byteLength).toBeLessThan(4000);
    // Nothing shared, empty base, empty target: still exact.
    const other = randomBytes(5000);
    expect(applyDelta(base, encodeDelta(base, other), 5000).equals(other)).toBe(true);
    expect(applyDelta(Buffer.alloc(0), encodeDelta(Buffer.alloc(0), other), 5000).equals(other)).toBe(true);
    expect(applyDelta(base, encodeDelta(base, Buffer.alloc(0)), 0).byteLength).toBe(0);
  });

  it('refuses a delta that builds past its cap or copies outside its base', () => {
    const base = randomBytes(1000);
    const target = Buffer.concat([base, base]);
    expect(() => applyDelta(base, encodeDelta(base, target), 1999)).toThrow(/more than 1999 bytes/);
    // One copy op of 100 bytes from offset 950 of a 1000-byte base.
    expect(() => applyDelta(base, Buffer.from([201, 1, 0xec, 0x0e]), 5000)).toThrow(/outside its base/);
    expect(() => applyDelta(base, Buffer.from([0x80]), 5000)).toThrow(/truncated/);
  });
});

describe('solid groups', () => {
  const members = Array.from({ length: 5 }, (_, i) => {
    const raw = Buffer.from(`member ${i} `.repeat(1000));
    return { digest: sha(raw), raw };
  });
  const sizes = new Map(members.map((m) => [m.digest, m.raw.byteLength]));
  const held = () => undefined;

  it('unpacks every member, checked, from one stream', async () => {
    const raw = encodeSolidRaw(members);
    const comp = await compressBlob(raw, 5);
    const out = expandEntry(sha(raw), comp, { sizes, held });
    expect(out.map((m) => m.digest)).toEqual(members.map((m) => m.digest));
    expect(out.every((m, i) => m.raw.equals(members[i]!.raw))).toBe(true);
  });

  it('refuses a group with a member not asked for, a wrong digest, or a member that lies', async () => {
    const raw = encodeSolidRaw(members);
    const comp = await compressBlob(raw, 5);
    const fewer = new Map([...sizes].slice(1));
    expect(() => expandEntry(sha(raw), comp, { sizes: fewer, held })).toThrow(/not asked for/);
    expect(() => expandEntry('0'.repeat(64), comp, { sizes, held })).toThrow(/does not match its digest/);
    const lying = encodeSolidRaw([{ digest: members[1]!.digest, raw: members[0]!.raw }]);
    expect(() => expandEntry(sha(lying), brotliCompressSync(lying), { sizes, held })).toThrow(/does not match/);
    // A bomb stops at the cap instead of filling memory.
    const bomb = brotliCompressSync(Buffer.alloc(100 * 1024 * 1024), {
      params: { [constants.BROTLI_PARAM_QUALITY]: 1 },
    });
    expect(() => expandEntry('0'.repeat(64), bomb, { sizes, held })).toThrow(/does not inflate/);
  });

  it('builds a delta entry only from a base on board', async () => {
    const base = Buffer.from('the index the vessel holds '.repeat(500));
    const target = Buffer.from('the index the vessel wants '.repeat(500));
    const raw = encodeDeltaRaw(sha(base), sha(target), encodeDelta(base, target));
    const comp = await compressBlob(raw, 5);
    const want = new Map([[sha(target), target.byteLength]]);
    const out = expandEntry(sha(raw), comp, { sizes: want, held: (d) => (d === sha(base) ? base : undefined) });
    expect(out[0]!.raw.equals(target)).toBe(true);
    expect(() => expandEntry(sha(raw), comp, { sizes: want, held })).toThrow(/not on board/);
  });

  it('groups chunks by a few MB and leaves a lone chunk to itself', () => {
    const chunks: [string, number][] = Array.from({ length: 1200 }, (_, i) => [String(i), 16 * 1024]);
    const groups = groupChunks(chunks);
    expect(groups.length).toBe(Math.ceil((1200 * 16 * 1024) / SOLID_GROUP_BYTES));
    expect(groups.flat().length).toBeLessThanOrEqual(1200);
    expect(groupChunks([['a', 10]])).toEqual([]);
  });
});
