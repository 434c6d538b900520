import { readFileSync, renameSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { signEnvelope, envelopeBytes } from '../../shared/trust/envelope.js';
import { loadPrivateKey } from '../../shared/trust/keys.js';

function keyFiles(dir: string, role: string) {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${role}-`) && f.endsWith('.key'))
    .map((f) => join(dir, f));
}

function signRelease(dir: string, keyFile = keyFiles(dir, 'release')[0]!) {
  const file = join(dir, 'release.json');
  writeFileSync(
    file,
    envelopeBytes(
      signEnvelope('release', { _type: 'release', name: 'sms', version: '1.2.0', sequence: 7 }, [
        loadPrivateKey(keyFile),
      ]),
    ),
  );
  return file;
}

describe('tender keys and release verify', () => {
  it('keys init writes 2-of-3 root keys and a release key, 0600, and prints fingerprints', async () => {
    const dir = join(tempDir(), 'keys');
    const r = await runCli(['keys', 'init', '--out', dir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/root v1 written/);
    expect(r.stdout.match(/^\s+root\s+[0-9a-f]{64}/gm)).toHaveLength(3);
    expect(r.stdout.match(/^\s+release\s+[0-9a-f]{64}/gm)).toHaveLength(1);
    for (const f of [...keyFiles(dir, 'root'), ...keyFiles(dir, 'release')])
      expect(statSync(f).mode & 0o777).toBe(0o600);
    const json = await runCli([
      'release',
      'verify',
      join(dir, 'root.json'),
      '--root',
      join(dir, 'root.json'),
      '--json',
    ]);
    expect(JSON.parse(json.stdout)).toMatchObject({ type: 'root', ok: true });
  });

  it('keys init refuses to overwrite an existing key directory', async () => {
    const dir = join(tempDir(), 'keys');
    await runCli(['keys', 'init', '--out', dir]);
    const before = readFileSync(join(dir, 'root.json'));
    const r = await runCli(['keys', 'init', '--out', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists; refusing to overwrite/);
    expect(readFileSync(join(dir, 'root.json'))).toEqual(before);
  });

  it('release verify accepts a genuine release and says in one line why a tampered one fails', async () => {
    const dir = join(tempDir(), 'keys');
    await runCli(['keys', 'init', '--out', dir]);
    const file = signRelease(dir);
    const ok = await runCli(['release', 'verify', file, '--root', join(dir, 'root.json')]);
    expect(ok.stdout).toMatch(/^OK: release sms 1.2.0 #7 signed by 1 of 1 required release keys/);
    const env = JSON.parse(readFileSync(file, 'utf8'));
    env.payload = Buffer.from(Buffer.from(env.payload, 'base64').toString().replace('1.2.0', '6.6.6')).toString(
      'base64',
    );
    writeFileSync(file, JSON.stringify(env));
    const bad = await runCli(['release', 'verify', file, '--root', join(dir, 'root.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^tender: release threshold not met: 0 of 1 .*tampered/);
  });

  it('release verify refuses a release signed by a root key, and a root where a release is demanded', async () => {
    const dir = join(tempDir(), 'keys');
    await runCli(['keys', 'init', '--out', dir]);
    const file = signRelease(dir, keyFiles(dir, 'root')[0]);
    const r = await runCli(['release', 'verify', file, '--root', join(dir, 'root.json')]);
    expect(r.stderr).toMatch(
      /release threshold not met: 0 of 1 required valid signatures \(signed by unknown or unauthorised keys\)/,
    );
    const t = await runCli([
      'release',
      'verify',
      join(dir, 'root.json'),
      '--root',
      join(dir, 'root.json'),
      '--type',
      'release',
    ]);
    expect(t.stderr).toMatch(/expected a release document, got a root document/);
  });

  it('keys rotate adds a release key; keys revoke removes the old one so its releases stop verifying', async () => {
    const dir = join(tempDir(), 'keys');
    await runCli(['keys', 'init', '--out', dir]);
    const v1 = join(dir, 'root.1.json');
    const oldRelease = keyFiles(dir, 'release')[0]!;
    const oldId = loadPrivateKey(oldRelease).keyid;
    const rot = await runCli(['keys', 'rotate', '--dir', dir, '--add-release', '1']);
    expect(rot.code, rot.stderr).toBe(0);
    expect(rot.stdout).toMatch(/root v2 written/);
    const rev = await runCli(['keys', 'revoke', oldId.slice(0, 12), '--dir', dir]);
    expect(rev.code, rev.stderr).toBe(0);
    // v2 and v3 each verify as rotations from their predecessor.
    expect((await runCli(['release', 'verify', join(dir, 'root.2.json'), '--root', v1])).stdout).toMatch(
      /root v2 is a valid rotation of v1/,
    );
    expect(
      (await runCli(['release', 'verify', join(dir, 'root.3.json'), '--root', join(dir, 'root.2.json')])).code,
    ).toBe(0);
    // Skipping v2 is refused.
    expect((await runCli(['release', 'verify', join(dir, 'root.3.json'), '--root', v1])).stderr).toMatch(
      /root v3 offered where v2 is next/,
    );
    const file = signRelease(dir, oldRelease);
    expect((await runCli(['release', 'verify', file, '--root', v1])).code).toBe(0);
    expect((await runCli(['release', 'verify', file, '--root', join(dir, 'root.3.json')])).stderr).toMatch(
      /release threshold not met/,
    );
  });

  it('keys rotate fails without a threshold of the old root keys and writes nothing', async () => {
    const dir = join(tempDir(), 'keys');
    const far = tempDir();
    await runCli(['keys', 'init', '--out', dir]);
    // Move two of the three root keys away: one key cannot meet the 2-of-3 threshold.
    const roots = keyFiles(dir, 'root');
    for (const f of roots.slice(1)) renameSync(f, join(far, basename(f)));
    const r = await runCli(['keys', 'rotate', '--dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/root v1 \(old keys\) threshold not met: 1 of 2.*pass more root keys with --key FILE/);
    expect(readdirSync(dir)).not.toContain('root.2.json');
    const ok = await runCli(['keys', 'rotate', '--dir', dir, '--key', join(far, basename(roots[1]!))]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('release verify reports an expired root', async () => {
    const dir = join(tempDir(), 'keys');
    await runCli(['keys', 'init', '--out', dir, '--expires', '0s']);
    const file = signRelease(dir);
    const r = await runCli(['release', 'verify', file, '--root', join(dir, 'root.json')]);
    expect(r.stderr).toMatch(/root v1 expired at/);
  });
});

describe('tender CLI', () => {
  it('runs as `npx tender` in a checkout', async () => {
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync('npx', ['--no-install', 'tender', '--help'], { encoding: 'utf8' });
    expect(out).toMatch(/tender release publish/);
  });

  it('--help lists the commands that exist', async () => {
    const r = await runCli(['--help']);
    for (const c of [
      'keys init',
      'release verify',
      'hub serve',
      'vessel add',
      'vessel list',
      'vessel revoke',
      'agent enroll',
      'agent run',
      'status',
    ]) {
      expect(r.stdout).toContain(`tender ${c}`);
    }
  });

  it('every command has --help', async () => {
    const r = await runCli(['vessel', 'add', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: tender vessel add NAME/);
    expect(r.stdout).toMatch(/--offline-file/);
  });

  it('an unknown flag or command is a one-line error with a non-zero exit', async () => {
    const a = await runCli(['keys', 'init', '--bogus']);
    expect(a.code).toBe(2);
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    expect(a.stderr).toMatch(/Unknown option '--bogus'/);
    const b = await runCli(['frobnicate']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('--json errors are machine-readable', async () => {
    const r = await runCli(['release', 'verify', '/nonexistent', '--root', '/nonexistent', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      error: 'error',
      message: expect.stringMatching(/cannot read \/nonexistent: ENOENT/),
    });
  });
});
