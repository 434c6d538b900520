import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { generateSealKey, openStream, sealStream } from '../../shared/trust/sealed-box.js';

const seal = (to: string, data: Buffer) => buffer(Readable.from([data]).pipe(sealStream(to)));
const open = (pem: string, data: Buffer) => buffer(Readable.from([data]).pipe(openStream(pem)));

describe('sealed box', () => {
  it('opens what was sealed to its key, at every record boundary', async () => {
    const k = generateSealKey();
    for (const n of [0, 1, 65535, 65536, 65537, 200_000]) {
      const data = randomBytes(n);
      const sealed = await seal(k.publicBase64, data);
      expect(sealed.includes(data.subarray(0, 64)) && n >= 64).toBe(false);
      expect((await open(k.privatePem, sealed)).equals(data)).toBe(true);
    }
  });

  it('refuses a sealed file with one byte flipped, truncated by a record, or opened with another key', async () => {
    const k = generateSealKey();
    const sealed = await seal(k.publicBase64, randomBytes(150_000));
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 100]! ^= 1;
    await expect(open(k.privatePem, flipped)).rejects.toThrow(/does not open/);
    await expect(open(k.privatePem, sealed.subarray(0, 15 + 32 + 65536 + 16))).rejects.toThrow(/does not open/);
    await expect(open(generateSealKey().privatePem, sealed)).rejects.toThrow(/does not open/);
  });

  it('seals the same data differently each time (a fresh ephemeral key)', async () => {
    const k = generateSealKey();
    const data = Buffer.from('the same dump');
    expect((await seal(k.publicBase64, data)).equals(await seal(k.publicBase64, data))).toBe(false);
  });
});
