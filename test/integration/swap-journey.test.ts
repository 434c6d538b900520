import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { buildSwapTestImages, removeAppContainers } from '../helpers/images.js';
import {
  CONSOLE_PASSWORD,
  composeFile,
  enrolVessel,
  freePort,
  getBody,
  publishAndRollout,
  startShore,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { startLoad } from '../helpers/load.js';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { paths } from '../../shared/protocol/routes.js';
import { unique } from '../helpers/names.js';

/**
 * Journey 3 and the swap: real hub, router and agent processes, the real Docker engine, busybox images
 * v1, v2, a v3 whose health never passes and a v4 that crashes 10 s after start.
 */
const APP = unique('sms');
const REPO = unique('tender-test/portal');
let shore: Shore;
let vessel: Vessel;
let port: number;
const files: Record<string, string> = {};

function runningContainers(): string[] {
  return execFileSync('docker', ['ps', '--filter', `label=io.tender.app=${APP}`, '--format', '{{.Names}}'])
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean)
    .sort();
}

async function hubEvents(): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const r = await fetch(`${shore.url}${paths.vesselEvents(vessel.name, { limit: 1000 })}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
}

beforeAll(async () => {
  useFileScope();
  removeAppContainers(APP);
  buildSwapTestImages(REPO);
  shore = await startShore();
  vessel = await enrolVessel(shore, 'ship-1');
  port = await freePort();
  for (const v of ['v1', 'v2', 'v3', 'v4']) files[v] = composeFile(shore.dir, v, `${REPO}:${v}`, port, APP);
  await vessel.startRouter();
  vessel.startAgent();
  await publishAndRollout(shore, files.v1!, '1.0.0');
  await waitServing(port, 'portal v1', vessel);
}, 120_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
});

describe('journey: swap, gate, roll back', () => {
  it('swaps v1 to v2 under steady load with zero failed requests', async () => {
    const load = startLoad(port, 100);
    await new Promise((r) => setTimeout(r, 1000));
    await publishAndRollout(shore, files.v2!, '2.0.0');
    await waitServing(port, 'portal v2', vessel);
    await eventually(
      async () =>
        (await vessel.status()).lastUpdate?.state === 'done' && (await vessel.status()).release.current === '2.0.0',
      40_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const stats = await load.stop();
    expect(stats.failed, stats.errors.slice(0, 5).join('; ')).toBe(0);
    expect(stats.bodies.get('portal v1')).toBeGreaterThan(0);
    expect(stats.bodies.get('portal v2')).toBeGreaterThan(0);
    // The old colour stays warm through the watch window (a rollback then is a router flip), then is
    // stopped but kept for rollback.
    expect(runningContainers()).toEqual([`tender-${APP}-portal-1.0.0`, `tender-${APP}-portal-2.0.0`]);
    await eventually(async () => runningContainers().join() === `tender-${APP}-portal-2.0.0`, 40_000);
    const kept = execFileSync('docker', [
      'ps',
      '-a',
      '--filter',
      `name=tender-${APP}-portal-1.0.0`,
      '--format',
      '{{.Status}}',
    ]).toString();
    expect(kept).toMatch(/Exited/);
    // Setuid bits in the image grant nothing inside the container.
    expect(
      execFileSync('docker', ['inspect', '-f', '{{json .HostConfig.SecurityOpt}}', `tender-${APP}-portal-2.0.0`])
        .toString()
        .trim(),
    ).toBe('["no-new-privileges"]');
    // It waits out the 20 s watch window for the warm colour to stop.
  }, 120_000);

  it('drops no request while the agent is killed and restarted under load', async () => {
    const load = startLoad(port, 100);
    await new Promise((r) => setTimeout(r, 500));
    await vessel.agent!.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    vessel.startAgent();
    await eventually(async () => (await vessel.status()).link.state === 'up');
    const stats = await load.stop();
    expect(stats.failed, stats.errors.slice(0, 5).join('; ')).toBe(0);
    expect(stats.ok).toBeGreaterThan(50);
  });

  it('restores its routes when the router itself restarts', async () => {
    await vessel.router!.stop('SIGKILL');
    expect(await getBody(port)).toMatch(/^error/);
    await vessel.startRouter();
    expect(await getBody(port)).toBe('portal v2');
  });

  it('crew rollback with the hub stopped serves the previous release in seconds, held across restarts', async () => {
    const hubPort = new URL(shore.url).port;
    await shore.hub.stop();
    const t0 = Date.now();
    const rb = await tender(['rollback', '--config', vessel.config, '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ from: '2.0.0', to: '1.0.0' });
    expect(await getBody(port)).toBe('portal v1');
    expect(Date.now() - t0).toBeLessThan(30_000);
    const st = await vessel.status();
    expect(st.release).toMatchObject({ current: '1.0.0', held: true });

    // Restart the agent and bring the hub back: the desired release is still 2.0.0, the hold wins.
    await vessel.agent!.stop();
    await shore.start(`127.0.0.1:${hubPort}`);
    vessel.startAgent();
    await eventually(async () => (await vessel.status()).link.state === 'up');
    await new Promise((r) => setTimeout(r, 4000));
    expect(await getBody(port)).toBe('portal v1');
    expect((await vessel.status()).release).toMatchObject({ current: '1.0.0', held: true, desired: '2.0.0' });

    // The rollback reached shore as an event once the link returned, with who did it and when.
    const rollback = await eventually(async () => (await hubEvents()).find((e) => e.type === 'rollback'), 30_000);
    expect(rollback.data).toMatchObject({
      from: '2.0.0',
      to: '1.0.0',
      by: expect.stringMatching(/^uid \d+/),
      at: expect.any(String),
    });

    const res = await tender(['resume', '--config', vessel.config]);
    expect(res.code, res.stderr).toBe(0);
    await waitServing(port, 'portal v2', vessel);
    expect((await vessel.status()).release.held).toBe(false);
  });

  it('refuses v3 at its health gate and keeps v2 serving', async () => {
    const load = startLoad(port, 50);
    await publishAndRollout(shore, files.v3!, '3.0.0');
    const st = await eventually(async () => {
      const s = await vessel.status();
      return s.lastResult?.version === '3.0.0' && s.lastResult.result === 'failed' && s;
    }, 60_000);
    const stats = await load.stop();
    expect(st.lastResult.reason).toMatch(/portal@3.0.0 failed to become healthy \(8s\): HTTP 404 from \/health/);
    expect(st.release.current).toBe('2.0.0');
    expect(await getBody(port)).toBe('portal v2');
    expect(stats.failed).toBe(0);
    expect(stats.bodies.get('portal v3')).toBeUndefined();
    // The failed v3 is not left running. 1.0.0 may still be warm from the resume's watch window (the test
    // before this one); it stops when that window ends, and only v2 runs.
    expect(runningContainers()).not.toContain(`tender-${APP}-portal-3.0.0`);
    await eventually(async () => runningContainers().join() === `tender-${APP}-portal-2.0.0`, 40_000);
    // Not retried on the next polls.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await vessel.status()).lastUpdate.to).toBe('3.0.0');
  }, 150_000);

  it('rolls v4 back by itself when it crashes after the flip', async () => {
    await publishAndRollout(shore, files.v4!, '4.0.0');
    await waitServing(port, 'portal v4', vessel);
    const st = await eventually(async () => {
      const s = await vessel.status();
      return (
        s.lastResult?.version === '4.0.0' && s.lastResult.result === 'rolled-back' && s.lastUpdate.state === 'done' && s
      );
    }, 60_000);
    expect(st.lastResult.reason).toMatch(/release 4.0.0 failed in its watch window: portal (exited|restarted)/);
    expect(st.release.current).toBe('2.0.0');
    expect(st.lastUpdate.kind).toBe('auto-rollback');
    await waitServing(port, 'portal v2', vessel);
    const rel = JSON.parse((await tender(['releases', '--config', vessel.config, '--json'])).stdout);
    expect(rel.releases.find((r: { version: string }) => r.version === '4.0.0').state).toBe('failed');
  });

  it('refuses a crew rollback to a release never kept on board, and changes nothing', async () => {
    const r = await tender(['rollback', '9.9.9', '--config', vessel.config]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('tender: release 9.9.9 is not kept on board (see: tender releases)');
    expect(await getBody(port)).toBe('portal v2');
  });

  it('the crew console needs its password, shows the live release, rolls back with the same controller', async () => {
    expect((await fetch(`${vessel.consoleUrl}/`)).status).toBe(401);
    const bad = { authorization: `Basic ${Buffer.from('crew:wrong').toString('base64')}` };
    expect((await fetch(`${vessel.consoleUrl}/`, { headers: bad })).status).toBe(401);
    const auth = { authorization: `Basic ${Buffer.from(`alice:${CONSOLE_PASSWORD}`).toString('base64')}` };
    const html = await (await fetch(`${vessel.consoleUrl}/`, { headers: auth })).text();
    expect(html).toMatch(/Live release: <b>2.0.0<\/b>/);
    expect(html).toMatch(/Roll back to the previous release/);
    // Each kept release shows what it may touch on the host (ATTACKS.md 42): these declare nothing, and
    // their manifests still verify, so the cell says "none" rather than "unknown".
    expect(html).toContain('<th>Host access</th>');
    for (const v of ['1.0.0', '2.0.0']) expect(html).toMatch(new RegExp(`<td>${v}</td><td>[^<]*</td><td>none</td>`));
    // A form post without the page's CSRF token is refused.
    const forged = await fetch(`${vessel.consoleUrl}/rollback`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
    });
    expect(forged.status).toBe(403);
    const rb = await fetch(`${vessel.consoleUrl}/api/rollback`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(rb.status).toBe(200);
    expect(await rb.json()).toMatchObject({ from: '2.0.0', to: '1.0.0' });
    expect(await getBody(port)).toBe('portal v1');
    const fromConsole = await eventually(
      async () => (await hubEvents()).find((e) => e.type === 'rollback' && String(e.data.by).startsWith('console')),
      30_000,
    );
    expect(fromConsole.data.by).toBe('console user alice from 127.0.0.1');
    const resume = await fetch(`${vessel.consoleUrl}/api/resume`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(resume.status).toBe(200);
    // The shore target (4.0.0) failed here before, so following shore again keeps what serves.
    const st = await vessel.status();
    expect(st.release).toMatchObject({ held: false, current: '1.0.0', desired: '4.0.0' });
    await new Promise((r) => setTimeout(r, 2500));
    expect(await getBody(port)).toBe('portal v1');
  });
});
