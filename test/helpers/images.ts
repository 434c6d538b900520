import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './tools.js';
import { RUN_ID } from './names.js';

/**
 * Test images built locally (no registry here): a busybox root filesystem with httpd serving /www,
 * imported with `docker import`. The page says which version it is; /health exists when healthy.
 */
export interface BusyboxImage {
  tag: string;
  /** Text served at /. */
  body: string;
  /** Serve /health (the gate path). */
  health?: boolean;
  /** Override the command; default: httpd in the foreground on 8080. */
  cmd?: string[];
}

const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'httpd', 'sleep', 'cat', 'echo', 'ls', 'nc'];

export function buildBusyboxImage(img: BusyboxImage): string {
  requireTool('docker', 'busybox', 'tar');
  const root = mkdtempSync(join(tmpdir(), 'tender-img-'));
  try {
    mkdirSync(join(root, 'bin'));
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
    mkdirSync(join(root, 'www'));
    mkdirSync(join(root, 'tmp'));
    writeFileSync(join(root, 'www', 'index.html'), img.body);
    if (img.health ?? true) writeFileSync(join(root, 'www', 'health'), 'ok\n');
    // sh as PID 1 with a TERM trap, so `docker stop` ends it at once instead of waiting out its timeout.
    const cmd = img.cmd ?? ['/bin/sh', '-c', 'trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait'];
    const tar = execFileSync('tar', ['-C', root, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
    const out = execFileSync(
      'docker',
      ['import', '-c', `CMD ${JSON.stringify(cmd)}`, '-c', 'EXPOSE 8080', '-', img.tag],
      { input: tar },
    )
      .toString()
      .trim();
    return out;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** The four images of the swap tests: v1, v2, a v3 whose health never passes, a v4 that crashes 10 s after start. */
export function buildSwapTestImages(repo = 'tender-test/portal'): Record<'v1' | 'v2' | 'v3' | 'v4', string> {
  return {
    v1: buildBusyboxImage({ tag: `${repo}:v1`, body: 'portal v1\n' }),
    v2: buildBusyboxImage({ tag: `${repo}:v2`, body: 'portal v2\n' }),
    v3: buildBusyboxImage({ tag: `${repo}:v3`, body: 'portal v3\n', health: false }),
    v4: buildBusyboxImage({
      tag: `${repo}:v4`,
      body: 'portal v4\n',
      cmd: ['/bin/sh', '-c', 'httpd -p 8080 -h /www; sleep 10; exit 1'],
    }),
  };
}

/**
 * Remove every container Tender made for an app (test cleanup). Only an app named for this run
 * (unique(), test/helpers/names.ts): a name like `sms` may be a developer's demo on the same engine.
 */
export function removeAppContainers(app: string): void {
  if (!app.includes(RUN_ID))
    throw new Error(`removeAppContainers(${JSON.stringify(app)}): not an app of this run; name it with unique()`);
  const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=io.tender.app=${app}`])
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean);
  if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'ignore' });
  try {
    execFileSync(
      'docker',
      [
        'volume',
        'rm',
        '-f',
        ...execFileSync('docker', ['volume', 'ls', '-q', '--filter', `label=io.tender.app=${app}`])
          .toString()
          .trim()
          .split('\n')
          .filter(Boolean),
      ],
      { stdio: 'ignore' },
    );
  } catch {
    /* no volumes */
  }
}
