// The CLI as run from a checkout: one CommonJS bundle of bin/main.ts and its dependencies
// (dist/cli/tender.cjs), so `tender` starts without compiling TypeScript. bin/tender.js runs it only
// while every input it was built from is unchanged (dist/cli/inputs.json: path, mtime, size), and
// rebuilds it, or falls back to the sources through tsx, otherwise. Built by `npm ci` (prepare).
// better-sqlite3's addon stays a file in node_modules (bin/cli-entry.ts hands its path over).
// Compiling 5 MB of JavaScript is most of a start, so V8's code cache for it is kept beside it.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { unlinkSync, writeFileSync } from 'node:fs';
import { Module, createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const OUT_DIR = join(root, 'dist', 'cli');
export const BUNDLE = join(OUT_DIR, 'tender.cjs');
export const INPUTS = join(OUT_DIR, 'inputs.json');
const CODE_CACHE = join(OUT_DIR, 'tender.cjs.v8cache');
// Installs change what is bundled from node_modules without touching any source file.
const EXTRA_INPUTS = ['package-lock.json', 'node_modules/.package-lock.json'];
// Another process building at the same time: it holds this lock; a lock older than this was left by a kill.
const STALE_LOCK_MS = 120_000;

function units() {
  const dir = join(root, 'systemd');
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith('.service'))
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );
}

function stamp(file) {
  const s = statSync(join(root, file));
  return [file, s.mtimeMs, s.size];
}

/** Build the bundle; returns false when another process is building it right now. */
export async function buildCli() {
  mkdirSync(OUT_DIR, { recursive: true });
  const lock = join(OUT_DIR, 'build.lock');
  try {
    closeSync(openSync(lock, 'wx'));
  } catch {
    if (Date.now() - statSync(lock).mtimeMs < STALE_LOCK_MS) return false;
    unlinkSync(lock);
    closeSync(openSync(lock, 'wx'));
  }
  const tmp = `${BUNDLE}.${process.pid}.tmp`;
  try {
    // Imported here, not at the top: the launcher loads this file on every start to check freshness.
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [join(root, 'bin', 'cli-entry.ts')],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      outfile: tmp,
      logLevel: 'warning',
      metafile: true,
      external: ['*.node'],
      define: { TENDER_BUNDLED_UNITS: JSON.stringify(units()) },
      logOverride: { 'empty-import-meta': 'silent' },
      plugins: [
        {
          // Optional modules their users require inside try/catch (see installer/bundle.mjs).
          name: 'absent',
          setup(b) {
            b.onResolve({ filter: /^(cpu-features|supports-color)$/ }, () => ({
              path: join(root, 'installer', 'absent.cjs'),
            }));
          },
        },
      ],
    });
    const sources = Object.keys(result.metafile.inputs)
      .filter((f) => !f.startsWith('<')) // esbuild's virtual inputs (the define)
      .map((f) => relative(root, join(root, f)))
      .filter((f) => !f.startsWith('node_modules/'));
    const systemd = readdirSync(join(root, 'systemd')).map((f) => `systemd/${f}`);
    const inputs = [...sources, ...systemd, ...EXTRA_INPUTS.filter((f) => statExists(f))].map(stamp);
    rmSync(CODE_CACHE, { force: true });
    renameSync(tmp, BUNDLE);
    writeFileSync(`${INPUTS}.tmp`, JSON.stringify({ inputs }));
    renameSync(`${INPUTS}.tmp`, INPUTS);
    return true;
  } finally {
    rmSync(tmp, { force: true });
    unlinkSync(lock);
  }
}

function statExists(file) {
  try {
    statSync(join(root, file));
    return true;
  } catch {
    return false;
  }
}

/** True when the bundle exists and every input it was built from is as it was (checked at every start). */
export function isFresh(dir = root, outDir = OUT_DIR) {
  try {
    const { inputs } = JSON.parse(readFileSync(join(outDir, 'inputs.json'), 'utf8'));
    statSync(join(outDir, 'tender.cjs'));
    return inputs.every(([file, mtime, size]) => {
      const s = statSync(join(dir, file));
      return s.mtimeMs === mtime && s.size === size;
    });
  } catch {
    return false;
  }
}

/** Run the bundle as a CommonJS module with V8's code cache; returns its exports. */
export function loadBundle() {
  const code = readFileSync(BUNDLE, 'utf8');
  let cachedData;
  try {
    cachedData = readFileSync(CODE_CACHE);
  } catch {
    /* first start after a build */
  }
  const script = new vm.Script(Module.wrap(code), {
    filename: BUNDLE,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
  if (!cachedData || script.cachedDataRejected) {
    try {
      const tmp = `${CODE_CACHE}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData());
      renameSync(tmp, CODE_CACHE);
    } catch {
      /* a read-only checkout starts without the cache */
    }
  }
  return mod.exports;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const t = Date.now();
  if (!(await buildCli())) console.error('build-cli: another build is running');
  else console.error(`build-cli: ${relative(root, BUNDLE)} in ${Date.now() - t} ms`);
}
