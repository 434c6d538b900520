import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/**
 * The import graph of the tree's own TypeScript files: every `import`, `import type`, `export ... from`,
 * dynamic `import()` and `typeof import()` of a relative path, so type-only edges count like any other.
 */
export function importGraph(root: string, dirs: string[]): Map<string, Set<string>> {
  const files = dirs.flatMap((d) => walk(join(root, d)));
  const known = new Set(files.map((f) => relative(root, f)));
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const from = relative(root, file);
    const edges = new Set<string>();
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = relative(root, resolve(dirname(file), ref.fileName)).replace(/\.js$/, '.ts');
      if (known.has(target)) edges.add(target);
    }
    graph.set(from, edges);
  }
  return graph;
}

function walk(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const p = join(dir, n);
    if (n === 'node_modules' || n.startsWith('.')) return [];
    if (statSync(p).isDirectory()) return walk(p);
    return n.endsWith('.ts') && !n.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every import cycle (Tarjan's strongly connected components of more than one file, or a self-import). */
export function importCycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) cycles.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return cycles;
}

/** Imports that cross a layer they may not: `rules` maps a folder to the folders it must not import. */
export function forbiddenImports(graph: Map<string, Set<string>>, rules: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const [from, edges] of graph) {
    for (const [layer, banned] of Object.entries(rules)) {
      if (!from.startsWith(`${layer}/`)) continue;
      for (const to of edges) if (banned.some((b) => to.startsWith(`${b}/`))) out.push(`${from} -> ${to}`);
    }
  }
  return out.sort();
}
