import { createHash, randomBytes } from 'node:crypto';
import { brotliDecompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  chunkId,
  chunkSealKeys,
  compressStored,
  isBackupChunk,
  newChunkSecret,
  openStoredChunk,
  storedChunk,
} from '../../shared/content/backup-chunks.js';
import { decodeChunkList, encodeChunkList } from '../../shared/protocol/backup-ashore.js';
import { policyTargets } from '../../shared/protocol/backup-policy.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('backup chunks', () => {
  it('a plain chunk is named by the sha256 of its prefixed bytes, never by the bare chunk digest', () => {
    const data = Buffer.from('row 1\nrow 2\n'.repeat(500));
    const s = storedChunk(data);
    expect(chunkId(s)).not.toBe(sha(data));
    expect(isBackupChunk(s)).toBe(true);
    expect(isBackupChunk(data)).toBe(false);
    expect(openStoredChunk(s)).toEqual(data);
    expect(brotliDecompressSync(compressStored(s))).toEqual(s);
    expect(compressStored(s).byteLength).toBeLessThan(data.byteLength / 10);
  });

  it('sealed: equal chunks give equal ids under one secret, other ids under another, and hide the content', () => {
    const keys = chunkSealKeys(newChunkSecret());
    const data = Buffer.from('maintenance history '.repeat(800));
    const a = storedChunk(data, keys);
    const b = storedChunk(Buffer.from(data), keys);
    expect(chunkId(a)).toBe(chunkId(b));
    expect(chunkId(storedChunk(data, chunkSealKeys(newChunkSecret())))).not.toBe(chunkId(a));
    expect(chunkId(a)).not.toBe(chunkId(storedChunk(data)));
    expect(a.includes(Buffer.from('maintenance history'))).toBe(false);
    expect(openStoredChunk(a, keys)).toEqual(data);
  });

  it('refuses a sealed chunk altered, opened with another key, or without one', () => {
    const keys = chunkSealKeys(newChunkSecret());
    const s = storedChunk(randomBytes(5000), keys);
    const bad = Buffer.from(s);
    bad[bad.byteLength - 20]! ^= 1;
    expect(() => openStoredChunk(bad, keys)).toThrow(/does not open/);
    expect(() => openStoredChunk(s, chunkSealKeys(newChunkSecret()))).toThrow(/does not open/);
    expect(() => openStoredChunk(s)).toThrow(/needs the backup key/);
    expect(() => openStoredChunk(Buffer.from('something else'))).toThrow(/not a backup chunk/);
  });

  it('a chunk list travels as base64 of 32-byte ids and comes back in order', () => {
    const ids = [sha(Buffer.from('a')), sha(Buffer.from('b')), sha(Buffer.from('a'))];
    const text = encodeChunkList(ids);
    expect(text.length).toBe(Math.ceil((96 * 4) / 3));
    expect(decodeChunkList(text)).toEqual(ids);
    expect(() => decodeChunkList(Buffer.alloc(33).toString('base64'))).toThrow(/32-byte/);
  });

  it('policy targets name a vessel by name, group or all; a group is unknown without the groups', () => {
    expect(policyTargets(['all'], { name: 'a' })).toBe(true);
    expect(policyTargets(['vessel:b', 'vessel:a'], { name: 'a' })).toBe(true);
    expect(policyTargets(['vessel:b'], { name: 'a', groups: ['x'] })).toBe(false);
    expect(policyTargets(['group:x'], { name: 'a', groups: ['x'] })).toBe(true);
    expect(policyTargets(['group:x'], { name: 'a', groups: [] })).toBe(false);
    expect(policyTargets(['group:x', 'vessel:b'], { name: 'a' })).toBeUndefined();
  });
});
