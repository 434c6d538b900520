import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { forbiddenImports, importCycles, importGraph } from '../helpers/import-graph.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TREE = ['shared', 'hub', 'agent', 'publisher', 'bin', 'installer', 'test', 'bench'];

describe('the import graph', () => {
  const graph = importGraph(ROOT, TREE);

  it('has no import cycle, not even through type-only imports', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(importCycles(graph)).toEqual([]);
  });

  it('keeps hub and agent apart: they share only shared/, and shared/ and publisher/ import neither', () => {
    expect(
      forbiddenImports(graph, {
        hub: ['agent', 'publisher'],
        agent: ['hub', 'publisher'],
        publisher: ['hub', 'agent'],
        shared: ['hub', 'agent', 'publisher', 'bin'],
      }),
    ).toEqual([]);
  });

  it('finds a cycle made only of type imports, and a self-import', () => {
    const g = new Map([
      ['a.ts', new Set(['b.ts'])],
      ['b.ts', new Set(['c.ts'])],
      ['c.ts', new Set(['a.ts'])],
      ['d.ts', new Set(['d.ts'])],
      ['e.ts', new Set(['a.ts'])],
    ]);
    expect(importCycles(g)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
    expect(forbiddenImports(new Map([['hub/x.ts', new Set(['agent/y.ts'])]]), { hub: ['agent'] })).toEqual([
      'hub/x.ts -> agent/y.ts',
    ]);
  });
});
