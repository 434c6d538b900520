#!/usr/bin/env node
// Launcher from a checkout. Runs the compiled bundle dist/cli/tender.cjs (bin/cli-bundle.mjs, run by
// `npm ci`) when every source it was built from is unchanged; otherwise rebuilds it first, and when that
// cannot be done (no esbuild, or another process is building) runs the TypeScript sources through tsx.
// A stale bundle is never run. TENDER_FROM_SOURCES=1 always runs the sources. The shipped single
// executable is built from installer/sea-entry.ts by installer/build-sea.sh and does not need this file.
async function load() {
  if (process.env.TENDER_FROM_SOURCES !== '1') {
    const cli = await import('./cli-bundle.mjs');
    if (cli.isFresh() || (await cli.buildCli().catch(() => false))) return cli.loadBundle();
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import('./main.ts');
}

const { main } = await load();
process.exitCode = await main(process.argv.slice(2));
