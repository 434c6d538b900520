#!/usr/bin/env node
// Development launcher: runs the TypeScript sources through tsx. The shipped single executable is built
// from bin/main.ts by installer/build-sea.sh and does not need this file.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
