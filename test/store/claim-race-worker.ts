// One "hub process" in the SQLite multi-process enrolment race (test/unit/hub-store-sqlite.test.ts):
// opens the store on DIR, says "ready", waits for "go AT" on stdin, spins until the clock reads AT (so
// all processes claim in the same millisecond), claims the token, prints the outcome.
import { openSqliteHubStore } from '../../hub/store/sqlite/sqlite-hub-store.js';

const [dir, tokenHash, publicKey] = process.argv.slice(2) as [string, string, string];
const store = openSqliteHubStore(dir);
process.stdout.write('ready\n');
process.stdin.once('data', async (line) => {
  const at = Number(/^go (\d+)/.exec(String(line))?.[1] ?? 0);
  while (Date.now() < at);
  let outcome: string;
  try {
    await store.enrolment.claim({ tokenHash, publicKey, address: `pid-${process.pid}` }, Date.now());
    outcome = 'won';
  } catch (err) {
    outcome = String((err as { code?: unknown }).code ?? (err as Error).message);
  }
  await store.close();
  process.stdout.write(`${outcome}\n`);
  process.exit(0);
});
