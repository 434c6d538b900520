import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

/**
 * What .github/workflows/release.yml does with a tag's artefacts and what a downloader checks: SHA256SUMS
 * signed with an Ed25519 key (OpenSSL), verified with the published public key.
 */
const repo = join(import.meta.dirname, '..', '..');
const script = (name: string) => join(repo, 'installer', name);

function release() {
  const dir = tempDir('tender-release-');
  const files = join(dir, 'release');
  mkdirSync(files);
  writeFileSync(join(files, 'tender'), 'the executable\n');
  writeFileSync(join(files, 'tender_0.1.0_amd64.deb'), 'the package\n');
  const key = join(dir, 'signing.key');
  const pub = join(dir, 'signing.pub');
  requireTool('openssl');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
  execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  execFileSync('bash', [script('sign-release.sh'), files, key]);
  return { dir, files, key, pub };
}

const verify = (files: string, pub: string) =>
  spawnSync('bash', [script('verify-release.sh'), files, pub], { encoding: 'utf8' });

describe('signed release artefacts', () => {
  it('verify with the signing key’s public half', () => {
    const r = release();
    const v = verify(r.files, r.pub);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/verified 2 files/);
  });

  it('refuse an altered file, an altered list, and another key, each in one line', () => {
    const r = release();
    appendFileSync(join(r.files, 'tender'), 'x');
    let v = verify(r.files, r.pub);
    expect(v.status).not.toBe(0);
    expect(v.stderr.trim()).toBe('verify-release: tender: FAILED');

    const s = release();
    appendFileSync(join(s.files, 'SHA256SUMS'), `${'0'.repeat(64)}  extra\n`);
    v = verify(s.files, s.pub);
    expect(v.stderr.trim()).toMatch(/^verify-release: SHA256SUMS\.sig is not a signature of SHA256SUMS/);

    const other = release();
    v = verify(release().files, other.pub);
    expect(v.status).not.toBe(0);
    expect(v.stderr.trim()).toMatch(/is not a signature/);
  });
});
