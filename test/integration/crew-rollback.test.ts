import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import {
  CONSOLE_PASSWORD,
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
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { unique } from '../helpers/names.js';

/**
 * Issue 19, journey 3 as a crew engineer lives it: real hub, router and agent processes and the real
 * Docker engine, a health gate written for a cold start (20 s) and a 10 s drain. A crew rollback is
 * accepted while the agent is in the drain of its own automatic rollback (the hub down), or in the health
 * gate of a shore update; it cuts that work short, says which, shows each step, and answers once the old
 * release serves through the router. A kill -9 in the middle of the preempting swap leaves one complete
 * release serving.
 */
const APP = unique('crew');
const REPO = `tender-test/${APP}`;
let shore: Shore;
let vessel: Vessel;
let port: number;
let hubListen: string;

function compose(version: string, img: string): string {
  const file = join(shore.dir, `${version}.yml`);
  writeFileSync(
    file,
    `name: ${APP}
services:
  portal:
    image: ${REPO}:${img}
    ports: ["${port}:8080"]
    x-tender:
      health: { http: /health, timeout: 20s, successes: 1 }
      drain: 10s
`,
  );
  return file;
}

function runningReleases(): string[] {
  return execFileSync('docker', ['ps', '--filter', `label=io.tender.app=${APP}`, '--format', '{{.Names}}'])
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((n) => n.slice(n.lastIndexOf('-') + 1))
    .sort();
}

const auth = { authorization: `Basic ${Buffer.from(`alice:${CONSOLE_PASSWORD}`).toString('base64')}` };

async function publish(version: string, img: string): Promise<void> {
  // An image of its own for each release that never gets healthy: the agent removes a failed one's image.
  if (img === 'v3') {
    img = `v3-${version}`;
    buildBusyboxImage({ tag: `${REPO}:${img}`, body: 'portal v3\n', health: false });
  }
  await publishAndRollout(shore, compose(version, img), version);
}

/** Wait until the agent logged that the update to VERSION is in its health gate. */
async function inGate(version: string): Promise<void> {
  await vessel.agent!.waitFor(
    (l) => l.includes('"update step"') && l.includes(`"step":"gate portal@${version}"`) && l.includes('"begin"'),
    60_000,
  );
}

beforeAll(async () => {
  useFileScope();
  removeAppContainers(APP);
  buildBusyboxImage({ tag: `${REPO}:v1`, body: 'portal v1\n' });
  buildBusyboxImage({ tag: `${REPO}:v2`, body: 'portal v2\n' });
  // Serves, passes its gate, then exits 3 s after start: rolled back by the watch window after the flip.
  buildBusyboxImage({
    tag: `${REPO}:v4`,
    body: 'portal v4\n',
    cmd: ['/bin/sh', '-c', 'httpd -p 8080 -h /www; sleep 3; exit 3'],
  });
  shore = await startShore();
  hubListen = `127.0.0.1:${new URL(shore.url).port}`;
  vessel = await enrolVessel(shore, unique('crew-ship-'), { watchSeconds: 30 });
  port = await freePort();
  await vessel.startRouter();
  vessel.startAgent();
  await publish('1.0.0', 'v1');
  await waitServing(port, 'portal v1', vessel, 60_000);
  await publish('2.0.0', 'v2');
  await waitServing(port, 'portal v2', vessel, 60_000);
}, 180_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(APP);
  const tags = execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', REPO]).toString();
  for (const tag of tags.split('\n').filter(Boolean))
    try {
      execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
});

describe('crew rollback preempts what the agent is doing (issue 19)', () => {
  it('cuts short the drain of an automatic rollback (hub down) and serves the old release at once', async () => {
    // 3.0.0 fails its gate and is undone by itself (a 20 s gate).
    await publish('3.0.0', 'v3');
    await eventually(async () => {
      const s = await vessel.status();
      return s.lastResult?.version === '3.0.0' && s.lastResult.result === 'failed';
    }, 90_000);
    expect(await getBody(port)).toBe('portal v2');
    // 4.0.0 goes live, exits 3 s later, and the watch window rolls it back to 2.0.0 (then a 10 s drain).
    await publish('4.0.0', 'v4');
    await waitServing(port, 'portal v4', vessel, 60_000);
    await shore.hub.stop();
    await vessel.agent!.waitFor((l) => l.includes('rolling back automatically'), 60_000);
    await waitServing(port, 'portal v2', vessel, 30_000);
    // In the drain of the automatic rollback now: the crew rolls back right away.
    const t0 = Date.now();
    const rb = await tender(['rollback', '--config', vessel.config, '--json']);
    const tookMs = Date.now() - t0;
    expect(rb.code, rb.stderr).toBe(0);
    expect(await getBody(port)).toBe('portal v1');
    const r = JSON.parse(rb.stdout);
    expect(r).toMatchObject({ from: '2.0.0', to: '1.0.0', by: 'agent' });
    expect(r.cutShort, `${rb.stderr}\n${vessel.agent!.lines.slice(-25).join('\n')}`).toBe(
      'the drain after the auto-rollback to 2.0.0',
    );
    // Each step was shown as it happened, the preemption named.
    expect(rb.stderr).toMatch(/rolling back now; cutting short the drain after the auto-rollback to 2\.0\.0/);
    expect(rb.stderr).toMatch(/portal@1\.0\.0 healthy/);
    expect(rb.stderr).toMatch(/router switched to 1\.0\.0/);
    expect(rb.stderr).toMatch(new RegExp(`${APP}@1\\.0\\.0 serves through the router after`));
    console.log(`crew rollback during the drain: ${tookMs} ms from the command to its answer`);
    // The agent finishes the tidy-up: the 2.0.0 colour and the crashed 4.0.0 stop; one release runs.
    await eventually(async () => runningReleases().join() === '1.0.0', 60_000);
    const st = await vessel.status();
    expect(st.release).toMatchObject({ current: '1.0.0', held: true });
  }, 240_000);

  it('from the console, cuts short the health gate of a shore update and shows each step as it happens', async () => {
    await shore.start(hubListen);
    expect((await tender(['resume', '--config', vessel.config])).code).toBe(0);
    await publish('5.0.0', 'v3');
    await inGate('5.0.0');
    const res = await fetch(`${vessel.consoleUrl}/api/rollback`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ release: `${APP}@2.0.0` }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const progress = lines.filter((l) => 'progress' in l).map((l) => l.progress as string);
    expect(progress[0]).toBe(`rolling back now; cutting short the health gate of ${APP}@5.0.0 (update)`);
    expect(progress.some((p) => p.startsWith('undo: portal@5.0.0 removed'))).toBe(true);
    expect(progress.some((p) => p.startsWith('router switched to 2.0.0'))).toBe(true);
    expect(lines.at(-1).result).toMatchObject({ from: '1.0.0', to: '2.0.0' });
    expect(await getBody(port)).toBe('portal v2');
    // Cut short is not failed: 5.0.0 stays on board, not marked failed, and nothing of it runs.
    const rel = JSON.parse((await tender(['releases', '--config', vessel.config, '--json'])).stdout);
    expect(rel.releases.find((x: { version: string }) => x.version === '5.0.0').state).not.toBe('failed');
    await eventually(async () => runningReleases().join() === '2.0.0', 60_000);
  }, 180_000);

  for (const [fault, serving] of [
    ['kill:after:gate', 'before'],
    ['kill:after:flip', 'target'],
  ] as const) {
    it(`kill -9 of the agent during a preempting rollback (${fault}) leaves one complete release serving`, async () => {
      const before = (await vessel.status()).release.current as string;
      const target = before === '1.0.0' ? '2.0.0' : '1.0.0';
      const version = fault === 'kill:after:gate' ? '6.0.0' : '7.0.0';
      expect((await tender(['resume', '--config', vessel.config])).code).toBe(0);
      await vessel.agent!.stop();
      vessel.startAgent({ TENDER_FAULT: fault });
      await eventually(async () => (await vessel.status()).link.state === 'up', 30_000);
      await publish(version, 'v3');
      await inGate(version);
      const rb = await tender(['rollback', target, '--config', vessel.config]);
      // The agent died under the command: it says so, it does not claim success.
      expect(rb.code).not.toBe(0);
      expect(rb.stderr).toMatch(/cutting short the health gate/);
      expect(rb.stderr).toMatch(/closed the control socket without an answer/);
      const dead = vessel.agent!;
      await eventually(async () => dead.proc.exitCode !== null || dead.proc.signalCode !== null, 10_000);
      vessel.startAgent();
      const expected = serving === 'before' ? before : target;
      await waitServing(port, `portal v${expected[0]}`, vessel, 60_000);
      await eventually(async () => {
        const s = await vessel.status();
        return s.lastUpdate.state !== 'running' && s.release.current === expected;
      }, 60_000);
      await eventually(async () => runningReleases().join() === expected, 60_000);
      expect(await getBody(port)).toBe(`portal v${expected[0]}`);
    }, 180_000);
  }
});
