import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PackDecoder, maxPackLength } from '../../agent/release/transfer/pack-decoder.js';
import { DOWNLOAD_ENTRY_HEADER_BYTES as PACK_ENTRY_HEADER } from '../../shared/protocol/pack.js';
import { planPacks } from '../../agent/release/transfer/planner.js';
import type { PackState } from '../../agent/release/transfer/pack-state.js';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

function entry(name: string, body: Buffer): Buffer {
  const h = Buffer.alloc(PACK_ENTRY_HEADER);
  Buffer.from(digest(name), 'hex').copy(h);
  h.writeUInt32BE(body.byteLength, 32);
  return Buffer.concat([h, body]);
}

describe('pack decoder', () => {
  it('yields the same entries whichever byte the pieces are cut at', () => {
    const bodies = [Buffer.from('first'), Buffer.alloc(0), Buffer.from('x'.repeat(1000))];
    const pack = Buffer.concat(bodies.map((b, i) => entry(`c${i}`, b)));
    for (const cut of [1, 7, PACK_ENTRY_HEADER, PACK_ENTRY_HEADER + 5, 100, pack.byteLength - 1]) {
      const d = new PackDecoder();
      const got = [...d.push(pack.subarray(0, cut)), ...d.push(pack.subarray(cut))].map((e) => ({
        digest: e.digest,
        body: Buffer.from(e.body).toString(),
      }));
      expect(got).toEqual(bodies.map((b, i) => ({ digest: digest(`c${i}`), body: b.toString() })));
    }
  });

  it('bounds a pack by its chunks: headers plus what brotli can add at worst', () => {
    const sizes = new Map([
      ['a', 100],
      ['b', 200_000],
    ]);
    expect(maxPackLength(['a'], sizes)).toBe(PACK_ENTRY_HEADER + 100 + 16 + 8);
    expect(maxPackLength(['a', 'b'], sizes)).toBeGreaterThan(200_100 + 2 * PACK_ENTRY_HEADER);
  });
});

describe('pack planner', () => {
  const pack = (release: string, digests: string[]): PackState => ({
    id: digest(release + digests.join()).slice(0, 32),
    length: 1,
    etag: '"e"',
    release,
    digests,
  });

  it('resumes only packs of this release holding chunks of this tier, and plans new packs for the rest', () => {
    const sizes = new Map([
      ['a', 10],
      ['b', 10],
      ['c', 10],
    ]);
    const mine = pack('app@2', ['a']);
    const plan = planPacks(
      [mine, pack('app@1', ['b']), pack('app@2', ['z-of-a-later-tier'])],
      'app@2',
      ['a', 'b', 'c'],
      sizes,
    );
    expect(plan.resumed).toEqual([mine]);
    expect(plan.groups).toEqual([['b', 'c']]);
  });

  it('splits the missing chunks into packs of about 128 MB', () => {
    const big = 50 * 1024 * 1024;
    const sizes = new Map(['a', 'b', 'c', 'd'].map((d) => [d, big]));
    expect(planPacks([], 'app@1', ['a', 'b', 'c', 'd'], sizes).groups).toEqual([['a', 'b', 'c'], ['d']]);
  });
});
