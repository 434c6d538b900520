/**
 * Bytes ashore for day 2 of a maintenance database (issue 13): what a backup policy would ship after a
 * realistic day of change, by content-defined chunks (shared/content/chunking.ts) of an uncompressed
 * custom-format dump, against the whole compressed dump, against chunks of the default (compressed)
 * custom format, and against restic and borg on the same two dumps.
 *
 *   npx tsx bench/backup-dedupe.ts [--runs 3]
 *
 * Needs Docker, the PostgreSQL test image (test/images/postgres-image.sh builds it), zstd, restic, borg.
 * Sizes do not vary between runs (the data is seeded); times are the median of the runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { chunkAll } from '../shared/content/chunking.js';
import { machine, median } from './lib.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 3) || 3;
const image = execFileSync('bash', ['test/images/postgres-image.sh'], { stdio: ['ignore', 'pipe', 'inherit'] })
  .toString()
  .trim();
const name = `tender-bench-pg-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'tender-bench-dedupe-'));

const sh = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, args, { input, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'inherit'] });
const psql = (sql: string) =>
  sh('docker', ['exec', '-i', name, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'maint'], sql);
const dump = (file: string, args: string[]) => {
  const t0 = Date.now();
  writeFileSync(file, sh('docker', ['exec', name, 'pg_dump', '-Fc', ...args, 'maint']));
  return (Date.now() - t0) / 1000;
};
const size = (f: string) => statSync(f).size;
const du = (d: string) => Number(sh('du', ['-sb', d]).toString().split('\t')[0]);
const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

// A ship's maintenance system: equipment, work orders with free text, and sensor readings (the bulk).
const DAY1 = `
SELECT setseed(0.42);
CREATE TABLE equipment (id int PRIMARY KEY, tag text NOT NULL, name text NOT NULL, location text NOT NULL);
INSERT INTO equipment SELECT g, 'EQ-' || lpad(g::text, 5, '0'), 'equipment ' || md5(g::text), 'deck ' || (g % 9)
  FROM generate_series(1, 5000) g;
CREATE TABLE work_orders (id int PRIMARY KEY, equipment int NOT NULL REFERENCES equipment, opened date NOT NULL,
  status text NOT NULL, description text NOT NULL);
INSERT INTO work_orders SELECT g, 1 + (g % 5000), date '2024-01-01' + (g / 400),
  (ARRAY['open','in progress','done','done','done'])[1 + (g % 5)],
  'inspect ' || md5(g::text) || ' and replace the seal if worn; torque to spec ' || (g % 90) || ' Nm'
  FROM generate_series(1, 200000) g;
CREATE TABLE readings (sensor int NOT NULL, at timestamptz NOT NULL, value double precision NOT NULL);
INSERT INTO readings SELECT 1 + (g % 400), timestamptz '2024-06-01' + g * interval '15 seconds', random() * 100
  FROM generate_series(1, 600000) g;
CREATE INDEX readings_at ON readings (sensor, at);
`;
// One day: 500 new work orders, 1 % of open ones progressed, 20 closed ones deleted, a day of readings
// from 400 sensors every 2 minutes (288,000 rows would be every 30 s; ships log less), vacuum as autovacuum would.
const DAY2 = `
SELECT setseed(0.43);
INSERT INTO work_orders SELECT g, 1 + (g % 5000), date '2025-05-15', 'open',
  'inspect ' || md5(g::text) || ' after the alarm on the ' || (g % 12) || ' o''clock round'
  FROM generate_series(200001, 200500) g;
UPDATE work_orders SET status = 'done' WHERE status = 'open' AND id % 100 = 7;
DELETE FROM work_orders WHERE status = 'done' AND id % 10000 = 3;
INSERT INTO readings SELECT 1 + (g % 400), timestamptz '2025-05-15' + (g / 400) * interval '2 minutes', random() * 100
  FROM generate_series(1, 288000) g;
VACUUM ANALYZE;
`;

function chunkStats(a: Buffer, b: Buffer) {
  const known = new Set(chunkAll(a).map((c) => c.digest));
  const day2 = chunkAll(b);
  const fresh = day2.filter((c) => !known.has(c.digest));
  const seen = new Set<string>();
  const unique = fresh.filter((c) => !seen.has(c.digest) && seen.add(c.digest));
  const rawNew = unique.reduce((n, c) => n + c.data.byteLength, 0);
  const brotli = unique.reduce(
    (n, c) =>
      n +
      brotliCompressSync(c.data, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: c.data.byteLength },
      }).byteLength,
    0,
  );
  const gzip = unique.reduce((n, c) => n + gzipSync(c.data, { level: 6 }).byteLength, 0);
  // The list of day 2's chunks (32-byte digest and two sizes each) also travels.
  const list = day2.length * 40;
  return { chunks: day2.length, newChunks: unique.length, rawNew, brotli, gzip, list };
}

function toolGrowth(tool: 'restic' | 'borg', f1: string, f2: string): { day1: number; day2: number } {
  const repo = join(dir, `${tool}-repo`);
  rmSync(repo, { recursive: true, force: true });
  const env = {
    ...process.env,
    RESTIC_PASSWORD: 'bench',
    BORG_PASSPHRASE: '',
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  };
  const run = (args: string[]) => {
    const r = spawnSync(tool, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')}: ${r.stderr}`);
  };
  // The same file name both days, as a nightly job writes it.
  const stage = join(dir, `${tool}-stage`);
  rmSync(stage, { recursive: true, force: true });
  execFileSync('mkdir', ['-p', stage]);
  const put = (f: string) => writeFileSync(join(stage, 'maint.dump'), readFileSync(f));
  if (tool === 'restic') {
    run(['init', '--repo', repo]);
    put(f1);
    run(['backup', '--repo', repo, stage]);
    const d1 = du(repo);
    put(f2);
    run(['backup', '--repo', repo, stage]);
    return { day1: d1, day2: du(repo) - d1 };
  }
  run(['init', '--encryption=none', repo]);
  put(f1);
  run(['create', '--compression', 'zstd,3', `${repo}::day1`, stage]);
  const d1 = du(repo);
  put(f2);
  run(['create', '--compression', 'zstd,3', `${repo}::day2`, stage]);
  return { day1: d1, day2: du(repo) - d1 };
}

try {
  sh('docker', ['run', '-d', '--name', name, image]);
  for (let i = 0; ; i++) {
    if (spawnSync('docker', ['exec', name, 'pg_isready', '-h', '/tmp']).status === 0) break;
    if (i > 120) throw new Error('postgres did not start');
    execFileSync('sleep', ['0.5']);
  }
  sh('docker', ['exec', name, 'createdb', 'maint']);
  psql(DAY1);
  const raw1 = join(dir, 'day1.Z0.dump');
  const def1 = join(dir, 'day1.default.dump');
  const dumpTimes: number[] = [];
  for (let i = 0; i < runs; i++) dumpTimes.push(dump(raw1, ['-Z0']));
  dump(def1, []);
  psql(DAY2);
  const raw2 = join(dir, 'day2.Z0.dump');
  const def2 = join(dir, 'day2.default.dump');
  dump(raw2, ['-Z0']);
  dump(def2, []);

  const compressTimes = { zstd: [] as number[], gzip: [] as number[] };
  let zstdSize = 0;
  let gzipSize = 0;
  for (let i = 0; i < runs; i++) {
    let t0 = Date.now();
    zstdSize = sh('zstd', ['-q', '-3', '-T1', '-c', raw2]).byteLength;
    compressTimes.zstd.push((Date.now() - t0) / 1000);
    t0 = Date.now();
    gzipSize = gzipSync(readFileSync(raw2), { level: 6 }).byteLength;
    compressTimes.gzip.push((Date.now() - t0) / 1000);
  }
  const cdc = chunkStats(readFileSync(raw1), readFileSync(raw2));
  const cdcDefault = chunkStats(readFileSync(def1), readFileSync(def2));
  const restic = toolGrowth('restic', raw1, raw2);
  const borg = toolGrowth('borg', raw1, raw2);

  const base = size(def2);
  const rows: [string, number][] = [
    ['full dump, pg_dump default compression (-Fc)', size(def2)],
    ['full dump, -Z0 then gzip -6 (node:zlib)', gzipSize],
    ['full dump, -Z0 then zstd -3', zstdSize],
    ['CDC chunks of -Fc (compressed) dump new on day 2, raw', cdcDefault.rawNew],
    ['CDC chunks of -Z0 dump new on day 2, raw', cdc.rawNew],
    ['CDC chunks of -Z0 dump new on day 2, brotli-9 each, + chunk list', cdc.brotli + cdc.list],
    ['CDC chunks of -Z0 dump new on day 2, gzip-6 each, + chunk list', cdc.gzip + cdc.list],
    ['restic 0.14 (repo growth on day 2, -Z0 dumps)', restic.day2],
    ['borg 1.2 zstd,3 (repo growth on day 2, -Z0 dumps)', borg.day2],
  ];
  console.log(`machine: ${machine()}`);
  console.log(`dump sizes: day 1 -Z0 ${mb(size(raw1))}, day 2 -Z0 ${mb(size(raw2))}, day 2 -Fc ${mb(size(def2))}`);
  console.log(
    `chunks (-Z0): day 2 has ${cdc.chunks}, ${cdc.newChunks} new; chunk list ${mb(cdc.list)}; ` +
      `(-Fc): ${cdcDefault.chunks}, ${cdcDefault.newChunks} new`,
  );
  console.log(
    `median of ${runs}: pg_dump -Z0 ${median(dumpTimes).toFixed(2)} s; zstd -3 ` +
      `${median(compressTimes.zstd).toFixed(2)} s; ` +
      `gzip -6 ${median(compressTimes.gzip).toFixed(2)} s (day 2 dump)`,
  );
  console.log(`first-day repo size: restic ${mb(restic.day1)}, borg ${mb(borg.day1)}`);
  console.log('| day 2 ashore | bytes | vs full -Fc dump |');
  console.log('|---|---:|---:|');
  for (const [what, n] of rows) console.log(`| ${what} | ${mb(n)} | ${(n / base).toFixed(3)}x |`);
} finally {
  spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}
