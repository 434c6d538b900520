import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/tools.js';

/**
 * docker-compose.yml as a user runs it (no image registry here, so nothing is started): the single hub
 * without any setting, the scale-out profile with its passwords, the balancer's haproxy config valid.
 */
const repo = join(import.meta.dirname, '..', '..');
const compose = (args: string[], env: Record<string, string> = {}) =>
  spawnSync('docker-compose', ['-f', join(repo, 'docker-compose.yml'), ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
  });

describe('docker-compose.yml', () => {
  it('parses with no setting for the single hub, and with its passwords for the scale-out profile', () => {
    requireTool('docker-compose', 'haproxy');
    // `docker compose up` with nothing set: the file parses (no password asked for), and only the single
    // hub is outside the profile.
    const single = compose(['config']);
    expect(single.status, single.stderr).toBe(0);
    expect(single.stdout.match(/profiles:\n {4}- scale-out/g)).toHaveLength(6);
    expect(/\n {2}hub:\n(?: {4}.*\n)*? {4}profiles:/.test(single.stdout.split('\n  postgres:')[0]!)).toBe(false);
    const env = { TENDER_PG_PASSWORD: 'pw-for-test', TENDER_S3_SECRET: 'secret-for-test' };
    const scaled = compose(['--profile', 'scale-out', 'config'], env);
    expect(scaled.status, scaled.stderr).toBe(0);
    for (const s of ['postgres:', 's3:', 's3-bucket:', 'hub-a:', 'hub-b:', 'balancer:'])
      expect(scaled.stdout).toContain(`\n  ${s}`);
    // Both hubs read the same database and chunk store; the password reached them.
    expect(scaled.stdout.match(/TENDER_HUB_DB: postgres:\/\/tender:pw-for-test@postgres:5432\/tender/g)).toHaveLength(
      2,
    );
    expect(scaled.stdout.match(/TENDER_HUB_CHUNKS: s3:\/\/tender\/chunks/g)).toHaveLength(2);
    const cfg = join(repo, 'installer', 'scale-out', 'haproxy.cfg');
    // Valid, with the two hubs unresolvable outside compose (warnings, not errors).
    expect(execFileSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })).toMatch(
      /Configuration file is valid/,
    );
  });
});
