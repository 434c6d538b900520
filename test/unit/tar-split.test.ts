import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeLayerIndex, encodeLayerIndex, LayerIndexError } from '../../shared/content/layer-index.js';
import {
  joinTar,
  looksLikeTar,
  MAX_ENTRIES,
  TarFormatError,
  TarPolicyError,
  TarSplitter,
  TarWalker,
} from '../../shared/content/tar-split.js';
import { paxEntry, tarHeader, tarOf, type TarEntrySpec } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';

function split(tar: Buffer): { meta: Buffer; content: Buffer } {
  const meta: Buffer[] = [];
  const content: Buffer[] = [];
  const s = new TarSplitter({ meta: (b) => meta.push(Buffer.from(b)), content: (b) => content.push(Buffer.from(b)) });
  // Odd read sizes: a split must not depend on where reads end.
  for (let off = 0; off < tar.byteLength; off += 777) s.push(tar.subarray(off, off + 777));
  s.end();
  return { meta: Buffer.concat(meta), content: Buffer.concat(content) };
}

/** Split without any rules, as a hostile publisher could: headers and padding to meta, bodies to content. */
function splitUnchecked(entries: TarEntrySpec[]): { meta: Buffer; content: Buffer } {
  const meta: Buffer[] = [];
  const content: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    meta.push(tarHeader(e, data.byteLength));
    ((e.type ?? '0') === '0' ? content : meta).push(data);
    meta.push(Buffer.alloc((512 - (data.byteLength % 512)) % 512));
  }
  meta.push(Buffer.alloc(1024));
  return { meta: Buffer.concat(meta), content: Buffer.concat(content) };
}

function refusedBothWays(entries: TarEntrySpec[], message: RegExp): void {
  expect(() => split(tarOf(entries))).toThrow(message);
  const { meta, content } = splitUnchecked(entries);
  expect(() => Buffer.concat([...joinTar(meta, [content])])).toThrow(TarPolicyError);
}

function gnuTar(dir: string, format: string): Buffer {
  return execFileSync('tar', ['-C', dir, `--format=${format}`, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
}

function sampleTree(mtime: number): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'app/src'), { recursive: true });
  mkdirSync(join(dir, 'a'.repeat(60), 'b'.repeat(60)), { recursive: true });
  writeFileSync(join(dir, 'app/src/index.js'), 'console.log("hi")\n'.repeat(500));
  writeFileSync(join(dir, 'app/big.bin'), Buffer.alloc(300_000, 7));
  writeFileSync(join(dir, 'app/empty'), '');
  writeFileSync(join(dir, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(40)), 'long name\n');
  symlinkSync('src/index.js', join(dir, 'app/link'));
  symlinkSync('/etc/alternatives/awk', join(dir, 'app/awk'));
  linkSync(join(dir, 'app/src/index.js'), join(dir, 'app/hard'));
  for (const p of ['app/src/index.js', 'app/big.bin', 'app/empty']) utimesSync(join(dir, p), mtime, mtime);
  return dir;
}

describe('tar-split', () => {
  for (const format of ['gnu', 'pax', 'ustar']) {
    it(`splits a ${format} tar into headers and file bodies and joins it back byte for byte`, () => {
      const tar = gnuTar(sampleTree(1_700_000_000), format);
      const { meta, content } = split(tar);
      expect(meta.byteLength + content.byteLength).toBe(tar.byteLength);
      // Bodies only: the script, the zero-filled file and the long-named file (the hardlink has none).
      expect(content.byteLength).toBe('console.log("hi")\n'.length * 500 + 300_000 + 'long name\n'.length);
      const pieces = [content.subarray(0, 1000), content.subarray(1000, 250_000), content.subarray(250_000)];
      expect(Buffer.concat([...joinTar(meta, pieces)]).equals(tar)).toBe(true);
    });
  }

  it('keeps file contents apart from timestamps: a rebuild with new mtimes changes only the headers', () => {
    const a = split(gnuTar(sampleTree(1_700_000_000), 'pax'));
    const b = split(gnuTar(sampleTree(1_800_000_000), 'pax'));
    expect(a.content.equals(b.content)).toBe(true);
    expect(a.meta.equals(b.meta)).toBe(false);
  });

  it('refuses a join whose content is a byte short or a byte long', () => {
    const tar = tarOf([{ name: 'f', data: Buffer.from('hello') }]);
    const { meta, content } = split(tar);
    expect(() => [...joinTar(meta, [content.subarray(0, 4)])]).toThrow(TarFormatError);
    expect(() => [...joinTar(meta, [content, Buffer.from('x')])]).toThrow(TarFormatError);
    expect(() => [...joinTar(meta.subarray(0, 512), [content])]).toThrow(TarFormatError);
  });

  it('tells a layer tar from a JSON file by its first block', () => {
    expect(looksLikeTar(tarOf([{ name: 'f', data: Buffer.alloc(5000, 1) }]))).toBe(true);
    expect(looksLikeTar(Buffer.alloc(1024))).toBe(true);
    expect(looksLikeTar(Buffer.from(JSON.stringify({ architecture: 'amd64', pad: 'x'.repeat(600) })))).toBe(false);
  });

  it('refuses a truncated tar and a header with a bad checksum', () => {
    const tar = tarOf([{ name: 'f', data: Buffer.alloc(2000, 1) }]);
    expect(() => split(tar.subarray(0, 1500))).toThrow(TarFormatError);
    const bad = Buffer.from(tar);
    bad[10] = 0x41;
    expect(() => split(bad)).toThrow(/checksum/);
  });

  // ATTACKS.md 14
  it('refuses entries that climb out of the root or are absolute', () => {
    refusedBothWays([{ name: '../../etc/cron.d/x', data: Buffer.from('* * * * * root sh\n') }], /climbs out/);
    refusedBothWays([{ name: '/etc/passwd', data: Buffer.from('root::0:0::/:/bin/sh\n') }], /absolute/);
    refusedBothWays([{ name: 'a/../../b', data: Buffer.from('x') }], /climbs out/);
    // A pax record may carry the name instead of the header.
    refusedBothWays(
      [paxEntry({ path: '../../etc/shadow' }), { name: 'harmless', data: Buffer.from('x') }],
      /climbs out/,
    );
  });

  // ATTACKS.md 15
  it(
    'refuses a path through a symlink of the same layer, a hardlink to an absolute ' +
      'path, and links out of the root',
    () => {
      refusedBothWays(
        [
          { name: 'l', type: '2', linkname: '/etc' },
          { name: 'l/passwd', data: Buffer.from('x') },
        ],
        /passes through the symlink/,
      );
      refusedBothWays([{ name: 'h', type: '1', linkname: '/etc/shadow' }], /absolute path/);
      refusedBothWays([{ name: 'h', type: '1', linkname: '../etc/shadow' }], /climbs out/);
      refusedBothWays([{ name: 'a/l', type: '2', linkname: '../../etc' }], /outside the image root/);
      // What real images hold is accepted: absolute symlinks (resolved inside the container's root),
      // relative ones that stay inside, hardlinks within the layer.
      const ok = tarOf([
        { name: 'usr/bin/awk', type: '2', linkname: '/etc/alternatives/awk' },
        { name: 'usr/lib/x/libfoo.so', type: '2', linkname: '../../lib/libfoo.so.1' },
        { name: 'bin/a', data: Buffer.from('x') },
        { name: 'bin/b', type: '1', linkname: 'bin/a' },
      ]);
      expect(split(ok).content.toString()).toBe('x');
    },
  );

  // ATTACKS.md 16
  it('refuses device nodes and FIFOs outside /dev, and data on entries that carry none', () => {
    refusedBothWays([{ name: 'etc/sda', type: '4' }], /block device/);
    refusedBothWays([{ name: 'tmp/pipe', type: '6' }], /fifo/);
    expect(() => split(tarOf([{ name: 'dev/null', type: '3' }]))).not.toThrow();
    expect(() => split(tarOf([{ name: 'd', type: '5', data: Buffer.from('hidden') }]))).toThrow(/carries 6 bytes/);
  });

  it('refuses 4096-deep directories and more entries than a layer may have', () => {
    refusedBothWays(
      [paxEntry({ path: Array(300).fill('d').join('/') }), { name: 'x', type: '5' }],
      /300 directories deep/,
    );
    refusedBothWays(
      [paxEntry({ path: Array(4096).fill('d').join('/') }), { name: 'x', type: '5' }],
      /longer than 4096 bytes/,
    );
    const w = new TarWalker();
    const h = tarHeader({ name: 'dir', type: '5' }, 0);
    for (let i = 0; i < MAX_ENTRIES; i++) w.header(h);
    expect(() => w.header(h)).toThrow(/more than 500000 entries/);
    // Half a million headers: a few seconds on an idle core, over 30 s on a loaded shared machine.
  }, 300_000);
});

describe('layer index', () => {
  const sample = {
    meta: Buffer.from('headers'),
    contentSize: 30,
    chunks: [
      ['a'.repeat(64), 10],
      ['b'.repeat(64), 20],
    ] as [string, number][],
  };

  it('round-trips', () => {
    const back = decodeLayerIndex(encodeLayerIndex(sample));
    expect(back.meta.toString()).toBe('headers');
    expect(back.chunks).toEqual(sample.chunks);
  });

  it('refuses a truncated, padded, inconsistent or boastful index', () => {
    const blob = encodeLayerIndex(sample);
    expect(() => decodeLayerIndex(blob.subarray(0, blob.byteLength - 1))).toThrow(LayerIndexError);
    expect(() => decodeLayerIndex(Buffer.concat([blob, Buffer.from([0])]))).toThrow(/trailing/);
    expect(() => decodeLayerIndex(encodeLayerIndex({ ...sample, contentSize: 31 }))).toThrow(/add up/);
    expect(() => decodeLayerIndex(Buffer.from('not an index at all'))).toThrow(/not a Tender layer index/);
    // A count of a billion chunks in a few bytes is refused before anything is allocated for it.
    const lie = Buffer.concat([Buffer.from('TNDRIX01'), Buffer.from([0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03])]);
    expect(() => decodeLayerIndex(lie)).toThrow(/cannot fit/);
  });
});
