/**
 * Entry of the checkout bundle (bin/cli-bundle.mjs → dist/cli/tender.cjs, started by bin/tender.js):
 * better-sqlite3 is bundled, but its addon stays in node_modules, so its path is handed over before any
 * database opens.
 */
import { main } from './main.js';
import { useSqliteAddon } from '../shared/sqlite.js';

useSqliteAddon(require.resolve('better-sqlite3/build/Release/better_sqlite3.node'));

export { main };
