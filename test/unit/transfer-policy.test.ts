import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inWindow, transferAllowed } from '../../agent/release/transfer-policy.js';
import { checkDisk } from '../../agent/release/transfer/disk-guard.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import { brotliCompressSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { tempDir } from '../helpers/tmp.js';

const at = (hhmm: string) => new Date(`2026-11-26T${hhmm}:00Z`);

describe('transfer policy', () => {
  it('honours UTC download windows, also across midnight', () => {
    expect(inWindow([], at('13:00'))).toBe(true);
    expect(inWindow(['02:00-06:00'], at('03:59'))).toBe(true);
    expect(inWindow(['02:00-06:00'], at('06:00'))).toBe(false);
    expect(inWindow(['22:00-02:00'], at('23:30'))).toBe(true);
    expect(inWindow(['22:00-02:00'], at('01:59'))).toBe(true);
    expect(inWindow(['22:00-02:00'], at('12:00'))).toBe(false);
  });

  it('waits for a link marked cheap when asked to', () => {
    expect(transferAllowed({ downloadWindows: [], onlyWhenCheap: true }, false, at('03:00'))).toMatch(
      /link marked cheap/,
    );
    expect(transferAllowed({ downloadWindows: [], onlyWhenCheap: true }, true, at('03:00'))).toBeUndefined();
    expect(transferAllowed({ downloadWindows: ['02:00-04:00'], onlyWhenCheap: false }, false, at('05:00'))).toMatch(
      /outside the download windows 02:00-04:00/,
    );
  });

  it('the disk guard refuses a release that would not fit with the margin', () => {
    const m = {
      version: '9',
      images: { x: { refs: [], layers: [{ diffId: 'sha256:x', size: 10 * 1024 ** 4 }] } },
    } as unknown as ReleaseManifest;
    expect(() => checkDisk(mkdtempSync(join(tmpdir(), 'd-')), m, 0)).toThrow(
      /not enough disk for release 9: needs \d+ MB .* MB free/,
    );
    const small = {
      version: '1',
      images: { x: { refs: [], layers: [{ diffId: 'sha256:x', size: 1000 }] } },
    } as unknown as ReleaseManifest;
    expect(() => checkDisk(tmpdir(), small, 0)).not.toThrow();
  });

  it('collects chunks no release on board refers to', () => {
    const store = createChunkStore(tempDir());
    const put = (s: string) => {
      const raw = Buffer.from(s);
      const d = createHash('sha256').update(raw).digest('hex');
      store.put(d, brotliCompressSync(raw), raw.byteLength);
      return d;
    };
    const keep = put('kept chunk');
    const drop = put('old chunk');
    expect(store.gc(new Set([keep])).files).toBe(1);
    expect(store.has(keep)).toBe(true);
    expect(store.has(drop)).toBe(false);
  });
});
