import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, realpathSync, writeFileSync, chmodSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import {
  composeFile,
  enrolVessel,
  freePort,
  publishAndRollout,
  startShore,
  waitServing,
  type Shore,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { startLoad } from '../helpers/load.js';
import { superviseAgent, type Supervised } from '../helpers/supervise.js';
import { tempDir } from '../helpers/tmp.js';
import { readJournal, selfPaths } from '../../agent/self-update/layout.js';

/**
 * The agent updates itself through the signed path, with the real single executable: v0.1.0 is the
 * installed executable (it also runs hub, router and every CLI call); v0.2.0 is built from the same
 * sources with another version stamped in, published with `tender agent publish` and rolled out with
 * `tender rollout start tender-agent@0.2.0`. The agent runs as the tender-agent unit would run it (its
 * ExecStartPre and ExecStart, restarted on every exit), with kill -9 at the update's steps on the way;
 * the router serves under load throughout. Then a v0.3.0 that crashes at start is put back by itself.
 */
describe('agent self-update (single executable)', () => {
  const repo = join(import.meta.dirname, '..', '..');
  const run = Date.now().toString(36);
  let v1 = '';
  let v2 = '';
  let away = '';

  const build = (version: string) => {
    const out = join(tempDir(), `tender-${version}`);
    execFileSync('bash', [join(repo, 'installer', 'build-sea.sh'), out], {
      cwd: repo,
      stdio: 'pipe',
      timeout: 400_000,
      env: { ...process.env, TENDER_BUILD_VERSION: version },
    });
    return out;
  };

  beforeAll(() => {
    away = tempDir('tender-selfupdate-');
    v1 = join(away, 'installed-tender');
    copyFileSync(build('0.1.0'), v1);
    v2 = join(away, 'tender-0.2.0');
    copyFileSync(build('0.2.0'), v2);
    chmodSync(v1, 0o755);
    process.env.TENDER_TEST_EXECUTABLE = v1;
    process.env.TENDER_ADDON_DIR = join(away, 'addon');
  }, 900_000);

  afterAll(() => {
    delete process.env.TENDER_TEST_EXECUTABLE;
    delete process.env.TENDER_ADDON_DIR;
  });

  const agentVersionAshore = async (shore: Shore, vessel: string) => {
    const r = await fetch(`${shore.url}/api/v1/vessels`, {
      headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
    });
    const body = (await r.json()) as { vessels: { name: string; agentVersion: string | null }[] };
    return body.vessels.find((v) => v.name === vessel)?.agentVersion ?? null;
  };

  const eventsAshore = async (shore: Shore, vessel: string) => {
    const r = await fetch(`${shore.url}/api/v1/vessels/${vessel}/events?limit=1000`, {
      headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
    });
    return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
  };

  const publishAgent = async (shore: Shore, binary: string, version: string) => {
    const p = await tender(
      [
        'agent',
        'publish',
        '--binary',
        binary,
        '--key',
        shore.releaseKey,
        '--version',
        version,
        '--cache',
        join(shore.dir, 'agent-chunks'),
        '--json',
      ],
      shore.env,
      600_000,
    );
    expect(p.code, p.stderr).toBe(0);
    const r = await tender(
      ['rollout', 'start', `tender-agent@${version}`, '--target', `vessel:${vesselName}`],
      shore.env,
    );
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(p.stdout) as { manifestBytes: number; uploadedBytes: number; chunks: number };
  };

  const vesselName = `su-${run}`;

  it('goes v0.1.0 -> v0.2.0 through a rollout, kill -9 at each step, the router serving under load', async () => {
    const shore = await startShore();
    const vessel = await enrolVessel(shore, vesselName, { watchSeconds: 6 });
    const router = await vessel.startRouter();
    // The faults, one per start: killed before the link switch, right after it (the old agent still
    // running, the link already on the new one), then the new agent killed just before it commits.
    const faults = ['kill:before:agent-switch', 'kill:after:agent-switch', 'kill:before:agent-commit'];
    let faultsFrom = Number.MAX_SAFE_INTEGER;
    const agent: Supervised = superviseAgent({
      installed: v1,
      config: vessel.config,
      dataDir: vessel.dataDir,
      env: { TENDER_ADDON_DIR: join(away, 'addon') },
      envFor: (n) => {
        const f = faults[n - faultsFrom];
        return f ? { TENDER_FAULT: f } : {};
      },
    });
    await eventually(async () => (await vessel.status()).link.state === 'up', 60_000);
    const self = selfPaths(vessel.dataDir);
    expect(realpathSync(self.current)).toBe(realpathSync(v1));

    // An app for the router to serve (its name sorts after tender-agent: a v1 desired state names one target).
    const app = unique('w');
    removeAppContainers(app);
    const tag = `tender-test/selfupdate:${run}`;
    buildBusyboxImage({ tag, body: 'served\n' });
    const port = await freePort();
    await publishAndRollout(shore, composeFile(shore.dir, 'w', tag, port, app), '1', `vessel:${vesselName}`);
    await waitServing(port, 'served', undefined, 90_000);
    const load = startLoad(port, 10, 900_000);

    // Restart the agent (as `systemctl restart` would) so that its next starts carry the faults.
    faultsFrom = agent.starts + 1;
    agent.proc!.kill('SIGTERM');
    await eventually(async () => agent.starts === faultsFrom, 60_000);
    const pub = await publishAgent(shore, v2, '0.2.0');
    await agent.waitFor((l) => l.includes('agent update healthy'), 600_000);
    expect(realpathSync(self.current)).not.toBe(realpathSync(v1));
    expect(
      execFileSync(self.current, ['--version'], { env: { ...process.env } })
        .toString()
        .trim(),
    ).toBe('0.2.0');
    const j = readJournal(self);
    expect(j.phase).toBe('idle');
    expect(j.floor).toBe(1);
    // Each fault killed the process it was meant for.
    const killed = agent.lines.filter((l) => l.includes('agent exited: SIGKILL')).length;
    expect(killed).toBe(3);
    expect(agent.preflights.some((p) => p.includes('trial-abandoned'))).toBe(true);
    await eventually(async () => (await agentVersionAshore(shore, vesselName)) === '0.2.0', 60_000);
    // The journal survived the swap: the old agent's events reached shore through the new one.
    await eventually(async () => {
      const types = (await eventsAshore(shore, vesselName)).map((e) => e.type);
      return types.includes('agent.update.switching') && types.includes('agent.update.healthy');
    }, 60_000);
    expect((await vessel.status()).release.current).toBe('1');

    // Bytes for v0.1.0 -> v0.2.0: what the vessel's transfer received, against the whole executable.
    const received = agent.lines
      .filter((l) => l.includes('release chunks on board') && l.includes('"release":"0.2.0"'))
      .map((l) => JSON.parse(l) as { bytesReceived: number; requests: number });
    expect(received.length).toBeGreaterThan(0);
    const wire = received.reduce((a, r) => a + r.bytesReceived, 0);
    const size = readFileSync(v2).byteLength;
    const gz = gzipSync(readFileSync(v2), { level: 6 }).byteLength;
    console.log(
      `self-update bytes: v0.1.0 -> v0.2.0 received ${wire} B in ${received.length} transfer(s) ` +
        `(+ manifest ${pub.manifestBytes} B); executable ${size} B, gzip -6 ${gz} B; ` +
        `ratio to gzip ${(wire / gz).toFixed(4)}; publish uploaded ${pub.uploadedBytes} B`,
    );
    expect(wire).toBeLessThan(gz / 5);

    // A v0.3.0 that crashes at every start: tried MAX_TRIAL_STARTS times, then put back by the preflight.
    const broken = join(away, 'tender-0.3.0');
    writeFileSync(
      broken,
      '#!/bin/sh\n[ "$1" = "--version" ] && { echo 0.3.0; exit 0; }\n' +
        'echo "tender 0.3.0: crashing at start" >&2\nexit 1\n',
    );
    chmodSync(broken, 0o755);
    faultsFrom = Number.MAX_SAFE_INTEGER;
    const mark = agent.lines.length;
    await publishAgent(shore, broken, '0.3.0');
    await agent.waitFor((l) => l.includes('agent update reverted'), 300_000, mark);
    expect(agent.lines.slice(mark).filter((l) => l.includes('crashing at start')).length).toBe(3);
    expect(execFileSync(self.current, ['--version']).toString().trim()).toBe('0.2.0');
    const after = readJournal(self);
    expect(after.failed.map((f) => f.version)).toContain('0.3.0');
    await eventually(async () => {
      const ev = (await eventsAshore(shore, vesselName)).find((e) => e.type === 'agent.update.failed');
      return ev && String(ev.data.reason).includes('did not come up healthy');
    }, 60_000);
    // And it is not tried again.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(agent.lines.slice(mark).filter((l) => l.includes('crashing at start')).length).toBe(3);

    const stats = await load.stop();
    expect(stats.ok).toBeGreaterThan(100);
    expect(stats.failed, stats.errors.slice(0, 5).join('; ')).toBe(0);
    // The router was never restarted.
    expect(router.proc.exitCode).toBeNull();
    expect(router.proc.signalCode).toBeNull();
    await agent.stop();
    removeAppContainers(app);
  }, 1_500_000);
});
