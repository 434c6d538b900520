// Bundle the CLI into one CommonJS file for the single executable (called by installer/build-sea.sh).
// Native addons and optional modules that their users require inside try/catch and can do without
// (ssh2's crypto addon and cpu-features: the agent talks to Docker over its unix socket; debug's
// supports-color) resolve to a module that throws, so nothing asks the SEA for a file at run time.
// better-sqlite3's addon is not among them: it ships as a SEA asset (installer/sea-entry.ts).
// The systemd units that `tender install` writes travel as text (TENDER_BUNDLED_UNITS, read by
// installer/unit-files.ts).
import { build } from 'esbuild';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const absent = fileURLToPath(new URL('./absent.cjs', import.meta.url));

const systemdDir = fileURLToPath(new URL('../systemd/', import.meta.url));
const units = Object.fromEntries(
  readdirSync(systemdDir)
    .filter((f) => f.endsWith('.service'))
    .map((f) => [f, readFileSync(`${systemdDir}${f}`, 'utf8')]),
);

await build({
  entryPoints: [fileURLToPath(new URL('./sea-entry.ts', import.meta.url))],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: process.argv[2],
  logLevel: 'warning',
  define: {
    TENDER_BUNDLED_UNITS: JSON.stringify(units),
    // The version stamped into the executable (agent/version.ts); unset, the source's default stays. Always
    // replaced, so the executable never reads its version from its environment.
    'process.env.TENDER_BUILD_VERSION_STAMP': JSON.stringify(process.env.TENDER_BUILD_VERSION ?? ''),
  },
  // unit-files.ts reads systemd/ through import.meta.url only when run from the sources, never in here.
  logOverride: { 'empty-import-meta': 'silent' },
  plugins: [
    {
      name: 'absent',
      setup(b) {
        b.onResolve({ filter: /(\.node$|^cpu-features$|^supports-color$)/ }, () => ({ path: absent }));
      },
    },
  ],
});
