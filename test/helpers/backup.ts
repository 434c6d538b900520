import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { createDockerEngine } from '../../shared/docker.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { loadPrivateKey } from '../../shared/trust/keys.js';
import { opsCall } from '../../shared/ops-client.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { paths, ROUTES } from '../../shared/protocol/routes.js';
import { buildManifest } from '../../publisher/publish.js';
import { tender } from './proc.js';
import type { Shore } from './fleet.js';

/** The PostgreSQL image of the backup tests: built once per machine by the script CI also calls. */
export const POSTGRES_IMAGE_SCRIPT = fileURLToPath(new URL('../images/postgres-image.sh', import.meta.url));
// debootstrap and the postgresql package: about two minutes here, longer on a slow mirror.
const POSTGRES_BUILD_TIMEOUT_MS = 15 * 60_000;

export function postgresImage(): string {
  return execFileSync('bash', [POSTGRES_IMAGE_SCRIPT], {
    timeout: POSTGRES_BUILD_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .toString()
    .trim();
}

// The app's database in WAL mode, as a real app would keep it.
const SQLITE_INIT =
  'sqlite3 /data/app.db "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS rows (v TEXT);" >/dev/null';
const APPLETS = ['sh', 'httpd', 'sleep', 'cat', 'echo', 'ls', 'rm', 'mv', 'tar', 'mkdir', 'wc', 'true', 'test', 'seq'];

/** Copy a host binary and the shared libraries it loads into an image root, at the same paths. */
function copyBinary(root: string, bin: string): void {
  const libs = execFileSync('ldd', [bin])
    .toString()
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => Boolean(p));
  for (const f of [bin, ...libs]) {
    mkdirSync(join(root, dirname(f)), { recursive: true });
    copyFileSync(f, join(root, f));
    chmodSync(join(root, f), 0o755);
  }
}

/**
 * Busybox service images for the sqlite and volume methods: httpd serves /www (the page says which
 * data it holds: a link to the volume's page.txt), /health passes while /data/broken does not exist.
 */
export function buildBackupServiceImage(tag: string, opts: { sqlite: boolean }): string {
  const root = mkdtempSync(join(tmpdir(), 'tender-bkimg-'));
  try {
    mkdirSync(join(root, 'bin'));
    copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
    if (opts.sqlite) copyBinary(root, execFileSync('sh', ['-c', 'command -v sqlite3']).toString().trim());
    for (const d of ['www', 'tmp', 'data']) mkdirSync(join(root, d));
    chmodSync(join(root, 'tmp'), 0o1777);
    writeFileSync(
      join(root, 'bin', 'serve'),
      `#!/bin/sh
trap "exit 0" TERM
${opts.sqlite ? SQLITE_INIT : 'test -e /data/page.txt || echo empty >/data/page.txt'}
ln -sf /data/page.txt /www/index.html
(while :; do if test -e /data/broken; then rm -f /www/health; else echo ok >/www/health; fi; sleep 0.2; done) &
httpd -f -p 8080 -h /www &
wait
`,
    );
    chmodSync(join(root, 'bin', 'serve'), 0o755);
    const tar = execFileSync('tar', ['-C', root, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
    return execFileSync('docker', ['import', '-c', 'CMD ["/bin/serve"]', '-c', 'ENV PATH=/usr/bin:/bin', '-', tag], {
      input: tar,
    })
      .toString()
      .trim();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Publish a release of images the vessel's engine already holds (the test's vessel shares this engine):
 * a signed manifest without layer chunks, as `release publish` would write it minus the upload, so a
 * 370 MB database image need not be chunked and fetched to test its backups.
 */
export async function publishLocalImages(
  shore: Shore,
  compose: string,
  version: string,
  sequence: number,
): Promise<void> {
  const m = await buildManifest(compose, { version, sequence, docker: createDockerEngine() });
  const bytes = envelopeBytes(signEnvelope('release', m, [loadPrivateKey(shore.releaseKey)]));
  await opsCall({ hub: shore.url, token: shore.env.TENDER_TOKEN }, ROUTES.publishRelease, paths.releases(), undefined, {
    raw: bytes,
    contentType: MEDIA.envelope,
  });
  const r = await tender(['rollout', 'start', `${m.app}@${version}`, '--target', 'all'], shore.env);
  expect(r.code, r.stderr).toBe(0);
}

/** Sign a policy file with the shore's release key; the signed file's path. */
export async function signPolicy(
  shore: Shore,
  dir: string,
  name: string,
  yaml: string,
  sequence: number,
): Promise<string> {
  const src = join(dir, `${name}.yml`);
  const out = join(dir, `${name}-${sequence}.policy.json`);
  writeFileSync(src, yaml);
  const r = await tender([
    'policy',
    'sign',
    src,
    '--key',
    shore.releaseKey,
    '--sequence',
    String(sequence),
    '--out',
    out,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

/** Run a command in a container; its stdout. */
export function dockerExec(container: string, cmd: string[], input?: string): string {
  return execFileSync('docker', ['exec', ...(input ? ['-i'] : []), container, ...cmd], { input }).toString();
}
