import { mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
// @ts-expect-error plain JavaScript launcher module, no declarations
import { isFresh } from '../../bin/cli-bundle.mjs';

function tree() {
  const dir = tempDir('tender-cli-bundle-');
  const out = join(dir, 'dist', 'cli');
  mkdirSync(join(dir, 'shared'), { recursive: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(dir, 'shared', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(out, 'tender.cjs'), '');
  const s = statSync(join(dir, 'shared', 'a.ts'));
  writeFileSync(join(out, 'inputs.json'), JSON.stringify({ inputs: [['shared/a.ts', s.mtimeMs, s.size]] }));
  return { dir, out, src: join(dir, 'shared', 'a.ts') };
}

describe('checkout bundle freshness', () => {
  it('is fresh while every input is as it was built', () => {
    const t = tree();
    expect(isFresh(t.dir, t.out)).toBe(true);
  });

  it('is stale once a source is edited, even to the same size', () => {
    const t = tree();
    writeFileSync(t.src, 'export const a = 2;\n');
    utimesSync(t.src, new Date(), new Date(Date.now() + 5000));
    expect(isFresh(t.dir, t.out)).toBe(false);
  });

  it('is stale when a source it was built from is gone, or when there is no bundle', () => {
    const t = tree();
    writeFileSync(join(t.out, 'inputs.json'), JSON.stringify({ inputs: [['shared/gone.ts', 1, 1]] }));
    expect(isFresh(t.dir, t.out)).toBe(false);
    const u = tree();
    expect(isFresh(u.dir, join(u.dir, 'nowhere'))).toBe(false);
  });
});
