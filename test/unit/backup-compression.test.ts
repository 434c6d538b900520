import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { compressor, decompressor, type Compression } from '../../agent/backup/compression.js';
import { requireTool } from '../helpers/tools.js';

describe('backup compression', () => {
  for (const c of ['zstd', 'gzip', 'none'] as Compression[]) {
    it(`${c}: what is compressed decompresses to the same bytes`, async () => {
      if (c === 'zstd') requireTool('zstd');
      const data = Buffer.concat([Buffer.from('SELECT 1;\n'.repeat(50_000)), randomBytes(100_000)]);
      const packed = await buffer(Readable.from([data]).pipe(compressor(c)));
      if (c !== 'none') expect(packed.byteLength).toBeLessThan(data.byteLength / 2);
      expect((await buffer(Readable.from([packed]).pipe(decompressor(c)))).equals(data)).toBe(true);
    });
  }

  it("zstd: a damaged stream fails with zstd's own reason", async () => {
    requireTool('zstd');
    const packed = await buffer(Readable.from([Buffer.from('x'.repeat(100_000))]).pipe(compressor('zstd')));
    packed[packed.length - 3]! ^= 0xff;
    await expect(buffer(Readable.from([packed]).pipe(decompressor('zstd')))).rejects.toThrow(/^zstd exited 1/);
  });
});
