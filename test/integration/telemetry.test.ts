import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import {
  enrolVessel,
  eventuallyOrReport,
  publishAndRollout,
  startShore,
  vesselReport,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { LinkSim } from '../link-sim.js';
import { paths } from '../../shared/protocol/routes.js';
import { unique } from '../helpers/names.js';

const REPO = unique('tender-test/chatter');

/**
 * Store-and-forward with real hub and agent processes and a real container writing numbered lines:
 * counted exactly, line by line, at the hub.
 */
let shore: Shore;
const apps: string[] = [];

beforeAll(async () => {
  useFileScope();
  buildBusyboxImage({ tag: `${REPO}:1`, body: 'chatter\n' });
  shore = await startShore();
}, 60_000);

afterAll(async () => {
  await runDeferredCleanup();
  for (const a of apps) removeAppContainers(a);
});

/** A release whose one service prints `lines` numbered lines after `delayS` seconds, then idles. */
function chatterCompose(base: string, lines: number, delayS = 2, intervalS = '0.005', pad = ''): string {
  const app = unique(base);
  apps.push(app);
  removeAppContainers(app);
  const file = join(shore.dir, `${app}.yml`);
  const script =
    `trap "exit 0" TERM; sleep ${delayS}; i=0; while [ $i -lt ${lines} ]; do echo ` +
    `"line $i${pad ? ` ${pad}` : ''}"; i=$((i+1)); sleep ${intervalS}; done; echo ` +
    `finished >&2; sleep 100000 & wait`;
  writeFileSync(
    file,
    `name: ${app}
services:
  chatter:
    image: ${REPO}:1
    command: ["/bin/sh", "-c", ${JSON.stringify(script)}]
    x-tender:
      health: { none: true }
`,
  );
  return file;
}

async function hubLines(vessel: string): Promise<string[]> {
  const r = await fetch(`${shore.url}${paths.vesselLogs(vessel, { service: 'chatter', limit: 10000 })}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  const body = (await r.json()) as { logs: { line: string }[] };
  return body.logs.map((l) => l.line);
}

function expectExactlyOnce(lines: string[], n: number): void {
  const numbered = lines.filter((l) => l.startsWith('line '));
  const counts = new Map<string, number>();
  for (const l of numbered) counts.set(l, (counts.get(l) ?? 0) + 1);
  const dupes = [...counts].filter(([, c]) => c > 1);
  expect(dupes.slice(0, 5), 'duplicated lines').toEqual([]);
  const missing = Array.from({ length: n }, (_, i) => `line ${i}`).filter((l) => !counts.has(l));
  expect(missing.slice(0, 5), `missing ${missing.length} lines`).toEqual([]);
  expect(numbered).toHaveLength(n);
}

async function vesselWith(name: string, overrides: Record<string, unknown> = {}): Promise<Vessel> {
  const v = await enrolVessel(shore, name, overrides);
  await v.startRouter();
  return v;
}

describe('telemetry: every line stored once ashore', () => {
  it('loses and repeats nothing across 20 kill -9s of the agent while shipping', async () => {
    const N = 3000;
    const v = await vesselWith('tele-kill');
    v.startAgent();
    await publishAndRollout(shore, chatterCompose('telekill', N), '1', 'vessel:tele-kill');
    await eventually(async () => (await hubLines('tele-kill')).length > 0, 60_000);
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 400 + Math.random() * 600));
      await v.agent!.stop('SIGKILL');
      v.startAgent();
    }
    await eventually(
      async () => (await hubLines('tele-kill')).filter((l) => l.startsWith('line ')).length >= N,
      120_000,
      1000,
    );
    await new Promise((r) => setTimeout(r, 2000));
    expectExactlyOnce(await hubLines('tele-kill'), N);
  }, 200_000);

  it('delivers everything once over a link that flaps every few seconds', async () => {
    const N = 2000;
    const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(shore.url).port) }, { latencyMs: 50 });
    const linkPort = await link.start();
    // Enrolled directly, then reaching the hub only through the flapping link.
    const v = await vesselWith('tele-flap', { hub: shore.via(linkPort) });
    v.startAgent();
    await publishAndRollout(shore, chatterCompose('teleflap', N, 2, '0.01'), 'f1', 'vessel:tele-flap');
    link.flap(3000, 2000);
    let got = 0;
    try {
      await eventuallyOrReport(
        `${N} lines ashore`,
        async () => (got = (await hubLines('tele-flap')).filter((l) => l.startsWith('line ')).length) >= N,
        async () => `${got} lines ashore; link ${JSON.stringify(link.stats)}\n${await vesselReport(v)}`,
        150_000,
        1000,
      );
    } finally {
      link.stopFlapping();
    }
    await new Promise((r) => setTimeout(r, 3000));
    expectExactlyOnce(await hubLines('tele-flap'), N);
    expect(link.stats.cuts).toBeGreaterThan(0);
    await link.close();
  }, 200_000);

  it('loses and reorders nothing when the vessel clock is set back a day', async () => {
    const N = 1500;
    const v = await vesselWith('tele-clock');
    v.startAgent();
    await publishAndRollout(shore, chatterCompose('teleclock', N, 2, '0.01'), 'c1', 'vessel:tele-clock');
    await eventually(async () => (await hubLines('tele-clock')).length > 100, 60_000);
    // The clock jumps back a day under a running ship: restart the agent with its clock a day behind.
    await v.agent!.stop('SIGKILL');
    v.startAgent({ TENDER_CLOCK_OFFSET_MS: String(-86_400_000) });
    await eventually(
      async () => (await hubLines('tele-clock')).filter((l) => l.startsWith('line ')).length >= N,
      90_000,
      1000,
    );
    expectExactlyOnce(await hubLines('tele-clock'), N);
    // Events written after the jump carry the vessel's (earlier) time but come later in sequence.
    const ev = await fetch(`${shore.url}${paths.vesselEvents('tele-clock', { limit: 100 })}`, {
      headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
    });
    const starts = ((await ev.json()) as { events: { type: string; at: string; seq: number }[] }).events
      .filter((e) => e.type === 'agent.started')
      .sort((a, b) => a.seq - b.seq);
    expect(starts.length).toBeGreaterThanOrEqual(2);
    expect(Date.parse(starts.at(-1)!.at)).toBeLessThan(Date.parse(starts[0]!.at));
  }, 200_000);

  it(
    'with the hub down, fills its cap and drops exactly the lowest class, oldest ' + 'first, and reports the count',
    async () => {
      const N = 8000;
      const v = await vesselWith('tele-cap', {
        telemetry: { outboxCapBytes: 1024 * 1024, freeDiskFloorBytes: 0, statsIntervalSeconds: 3600 },
      });
      await publishAndRollout(shore, chatterCompose('telecap', N, 10, '0', 'x'.repeat(120)), 'p1', 'vessel:tele-cap');
      v.startAgent();
      await eventually(async () => (await v.status()).release.current === 'p1', 60_000);
      // Cut the vessel off from shore while the service writes ~8,000 lines of ~150 bytes into a 1 MiB cap.
      const cfg = JSON.parse((await import('node:fs')).readFileSync(v.config, 'utf8'));
      await v.agent!.stop();
      writeFileSync(v.config, JSON.stringify({ ...cfg, hub: 'http://127.0.0.1:9' }));
      v.startAgent();
      await eventually(
        async () => {
          const r = await tender(['logs', 'chatter', '--config', v.config, '--limit', '2', '--json']);
          return (JSON.parse(r.stdout).logs as { line: string }[]).some((l) => l.line.startsWith(`line ${N - 1} `));
        },
        90_000,
        1000,
      );
      await v.agent!.stop();
      writeFileSync(v.config, JSON.stringify(cfg));
      v.startAgent();
      // Everything that was not dropped arrives; what arrives plus what was counted dropped is all of it.
      const settled = await eventually(
        async () => {
          const r = await fetch(`${shore.url}${paths.vesselEvents('tele-cap', { limit: 1 })}`, {
            headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
          });
          const t = ((await r.json()) as { telemetry: { backlog: number; drops: Record<string, { records: number }> } })
            .telemetry;
          return t && t.backlog === 0 && t.drops.info && t;
        },
        90_000,
        1000,
      );
      await new Promise((r) => setTimeout(r, 2000));
      const lines = (await hubLines('tele-cap'))
        .filter((l) => l.startsWith('line '))
        .map((l) => l.split(' ').slice(0, 2).join(' '));
      const droppedInfo = settled.drops.info!.records;
      expect(droppedInfo).toBeGreaterThan(1000);
      // The drops are the oldest lines: what arrived is one contiguous run ending with the last line.
      const first = Number(lines[0]!.split(' ')[1]);
      expect(lines).toEqual(Array.from({ length: N - first }, (_, i) => `line ${first + i}`));
      // Lines dropped are exactly the lines missing (no other info records were written by this service).
      const otherInfo = 0;
      expect(first).toBe(droppedInfo - otherInfo);
      // Events were not dropped.
      expect(settled.drops.event).toBeUndefined();
    },
    200_000,
  );
});
