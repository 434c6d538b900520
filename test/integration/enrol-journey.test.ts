import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { daemon, eventually, tender } from '../helpers/proc.js';
import { startShore, type Shore } from '../helpers/fleet.js';
import { tempDir } from '../helpers/tmp.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * The foundation journey with real processes talking real HTTP: keys, hub, ops token, vessel add, agent
 * enrol (online and offline), agent polling, status with the hub down, revocation.
 */
/** Enrolment writes production defaults; tests poll every second so they finish quickly. */
function fastPolling(configPath: string): void {
  const c = JSON.parse(readFileSync(configPath, 'utf8'));
  writeFileSync(configPath, JSON.stringify({ ...c, pollIntervalSeconds: 1, maxBackoffSeconds: 2 }));
}

async function status(config: string) {
  const r = await tender(['status', '--config', config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/**
 * Wait (bounded: a loaded CI machine starts an agent slowly) until `tender status` shows the link in
 * `state`; on a timeout, say what it showed and the agent's last lines.
 */
async function linkBecomes(config: string, state: string, agent: { lines: string[] }) {
  return eventually(async () => {
    const s = await status(config);
    if (s.link.state !== state)
      throw new Error(
        `link ${s.link.state} (${s.link.lastError ?? 'no error'}); agent: ${agent.lines.slice(-5).join(' | ')}`,
      );
    return s;
  }, 60_000);
}

async function hubVessel(shore: Shore, name: string) {
  const r = await fetch(`${shore.url}${paths.vessel(name)}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  return r.json();
}

describe('journey: enrol a vessel and keep in touch over a link that comes and goes', () => {
  it(
    'enrols online, polls, keeps answering status with the hub down, reconnects, and ' + 'is cut off by revocation',
    async () => {
      const shore = await startShore();
      const add = await tender(['vessel', 'add', 'ship-1', '--group', 'north', '--json'], shore.env);
      expect(add.code, add.stderr).toBe(0);
      const { token } = JSON.parse(add.stdout);
      const config = join(shore.dir, 'vessel', 'agent.json');
      const data = join(shore.dir, 'vessel', 'state');
      const enrol = await tender([
        'agent',
        'enroll',
        '--insecure-http',
        '--hub',
        shore.url,
        '--token',
        token,
        '--config',
        config,
        '--data',
        data,
      ]);
      expect(enrol.code, enrol.stderr).toBe(0);
      expect(enrol.stdout).toMatch(/enrolled as ship-1/);
      expect(JSON.parse(readFileSync(config, 'utf8'))).toMatchObject({ vesselName: 'ship-1', dataDir: data });

      // A second enrolment with the same token is refused with one line, and the config is untouched.
      const again = await tender([
        'agent',
        'enroll',
        '--insecure-http',
        '--hub',
        shore.url,
        '--token',
        token,
        '--config',
        join(shore.dir, 'other.json'),
        '--data',
        join(shore.dir, 'other'),
      ]);
      expect(again.code).toBe(1);
      expect(again.stderr.trim()).toBe('tender: enrolment refused by the hub (409): enrolment token was already used');

      fastPolling(config);
      const agent = daemon(['agent', 'run', '--config', config]);
      await linkBecomes(config, 'up', agent);
      const seen = await hubVessel(shore, 'ship-1');
      expect(seen.state).toBe('enrolled');
      expect(seen.lastContactAgeSeconds).toBeLessThan(10);
      expect(seen.status).toMatchObject({ agentVersion: expect.any(String), rootVersion: 1 });

      // Link down: the hub stops. The agent records it, stays up, logs no error, and status still answers.
      const port = new URL(shore.url).port;
      await shore.hub.stop();
      const down = await eventually(async () => {
        const s = await status(config);
        return s.link.state === 'down' && s;
      });
      expect(down.link.lastError).toMatch(/unreachable/);
      expect(down.lastSync).not.toBeNull();
      expect(agent.proc.exitCode).toBeNull();
      expect(agent.lines.filter((l) => l.startsWith('{') && JSON.parse(l).level >= 50)).toEqual([]);

      // Link back: same hub, same port.
      await shore.start(`127.0.0.1:${port}`);
      await linkBecomes(config, 'up', agent);

      // Revocation cuts the vessel off; the agent says so and keeps running.
      const rev = await tender(['vessel', 'revoke', 'ship-1'], shore.env);
      expect(rev.code, rev.stderr).toBe(0);
      const refused = await eventually(async () => {
        const s = await status(config);
        return s.link.state === 'refused' && s;
      });
      expect(refused.link.lastError).toMatch(/401/);
      expect(agent.proc.exitCode).toBeNull();
      await agent.stop();
      expect(agent.proc.exitCode ?? 0).toBe(0);
    },
  );

  it('enrols offline from a file with no hub, then completes enrolment on first contact', async () => {
    const shore = await startShore();
    const file = join(shore.dir, 'ship-2.enrol.json');
    const add = await tender(['vessel', 'add', 'ship-2', '--offline-file', file], shore.env);
    expect(add.code, add.stderr).toBe(0);
    const port = new URL(shore.url).port;
    await shore.hub.stop();

    const config = join(shore.dir, 'v2', 'agent.json');
    const enrol = await tender([
      'agent',
      'enroll',
      '--insecure-http',
      '--file',
      file,
      '--config',
      config,
      '--data',
      join(shore.dir, 'v2', 'state'),
    ]);
    expect(enrol.code, enrol.stderr).toBe(0);
    expect((await status(config)).enrolment).toBe('pending first contact');

    fastPolling(config);
    daemon(['agent', 'run', '--config', config]);
    await eventually(async () => (await status(config)).link.state === 'down');
    await shore.start(`127.0.0.1:${port}`);
    const s = await eventually(async () => {
      const st = await status(config);
      return st.link.state === 'up' && st;
    });
    expect(s.enrolment).toBe('complete');
    expect((await hubVessel(shore, 'ship-2')).state).toBe('enrolled');
    const list = await tender(['vessel', 'list'], shore.env);
    expect(list.stdout).toMatch(/^ship-2\s+-\s+-\s+enrolled\s+\d+ s ago/m);
  });

  it('refuses an offline file whose root does not match the token pin, and writes no config', async () => {
    const shore = await startShore();
    const file = join(shore.dir, 'ship-3.enrol.json');
    await tender(['vessel', 'add', 'ship-3', '--offline-file', file], shore.env);
    const other = tempDir();
    await tender(['keys', 'init', '--out', other]);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.root = readFileSync(join(other, 'root.json')).toString('base64');
    writeFileSync(file, JSON.stringify(doc));
    const config = join(shore.dir, 'v3', 'agent.json');
    const r = await tender(['agent', 'enroll', '--file', file, '--config', config, '--data', join(shore.dir, 'v3')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'tender: the root document does not match the one the enrolment token pins; refusing to trust it',
    );
    const s = await tender(['status', '--config', config]);
    expect(s.stderr).toMatch(/no such file \(enrol first/);
  });
});
