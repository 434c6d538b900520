// Bundle the CLI into one CommonJS file for the single executable (called by installer/build-sea.sh).
// Native addons and optional modules that their users require inside try/catch and can do without
// (ssh2's crypto addon and cpu-features: the agent talks to Docker over its unix socket; debug's
// supports-color) resolve to a module that throws, so nothing asks the SEA for a file at run time.
// better-sqlite3's addon is not among them: it ships as a SEA asset (installer/sea-entry.ts).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const absent = fileURLToPath(new URL('./absent.cjs', import.meta.url));
await build({
  entryPoints: [fileURLToPath(new URL('./sea-entry.ts', import.meta.url))],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: process.argv[2],
  logLevel: 'warning',
  plugins: [
    {
      name: 'absent',
      setup(b) {
        b.onResolve({ filter: /(\.node$|^cpu-features$|^supports-color$)/ }, () => ({ path: absent }));
      },
    },
  ],
});
