/**
 * Entry of the single executable (installer/build-sea.sh): better-sqlite3's native addon travels inside
 * the executable as a SEA asset; it is written once to a file named by its digest (a native module can
 * only be loaded from a file) and loaded with process.dlopen, then handed to every database open.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../bin/main.js';
import { useSqliteAddon } from '../shared/sqlite.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const sea = require('node:sea') as { isSea(): boolean; getAsset(key: string): ArrayBuffer };

function loadSqliteAddon(): void {
  if (!sea.isSea()) return;
  const bytes = Buffer.from(sea.getAsset('better_sqlite3.node'));
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  // Root's agent keeps it under /var/lib/tender; anyone else under their runtime or temp directory.
  const dir =
    process.env.TENDER_ADDON_DIR ??
    join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), `tender-${process.getuid?.() ?? 'u'}`);
  const file = join(dir, `better_sqlite3-${digest}.node`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Code is about to be loaded from here: the directory must be ours alone, and the file exactly the asset.
  const st = statSync(dir);
  if (st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0)
    throw new Error(`${dir} is not private to this user; set TENDER_ADDON_DIR`);
  if (!existsSync(file) || createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16) !== digest) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes, { mode: 0o500 });
    renameSync(tmp, file);
  }
  const mod = { exports: {} as unknown };
  process.dlopen(mod, file);
  useSqliteAddon(mod.exports);
}

loadSqliteAddon();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`tender: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
