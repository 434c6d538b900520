import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startShore, type Shore } from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { enrolSimVessel, publishSimRelease, type SimVessel } from '../helpers/sim-vessel.js';
import type { RolloutShow } from '../../shared/protocol/rollout-bodies.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * Journey 2 at fleet scale (issue 11, Done when): a real hub process and 20 enrolled vessels (simulated:
 * each polls its desired state with its own key and reports rollout.outcome events through telemetry,
 * kept while offline and sent in order on return). A 5% canary passes and the waves follow by
 * themselves; a release failing its gate on the canary halts with the rest untouched; a third with
 * --wave-quorum proceeds with vessels offline, which get it when they return; pause, resume and abort
 * hold across a hub restart mid-wave. `tender rollout show` of the first rollout goes to
 * ROLLOUT_SHOW_OUT when set (the note).
 */
const CLI_MS = 120_000;
const failing = new Set<string>();

async function showOf(shore: Shore, id: number): Promise<RolloutShow> {
  const r = await fetch(`${shore.url}${paths.rollout(id)}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  return (await r.json()) as RolloutShow;
}

describe('journey: a fleet rollout in waves', () => {
  it('canary, waves, a halt, a quorum with vessels at sea, and a hub restart mid-wave', async () => {
    const shore = await startShore();
    const op = shore.env.TENDER_TOKEN!;
    const ref = { url: shore.url };
    const fleet: SimVessel[] = [];
    for (let i = 0; i < 20; i++)
      fleet.push(
        await enrolSimVessel(
          ref,
          op,
          `ship-${String(i).padStart(2, '0')}`,
          ['fleet'],
          (app, v) => (failing.has(`${app}@${v}`) ? 'gate-failed' : 'healthy'),
          { localAddress: `127.0.3.${10 + Math.floor(i / 5)}` },
        ),
      );
    for (const [version, sequence] of [
      ['2', 1],
      ['3', 2],
      ['4', 3],
      ['5', 4],
      ['6', 5],
    ] as const)
      await publishSimRelease(shore.url, op, shore.releaseKey, { app: 'sms', version, sequence });
    const cli = async (args: string[]) => {
      const r = await tender(args, shore.env, CLI_MS);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    const stepAll = () => Promise.all(fleet.filter((v) => v.online).map((v) => v.step()));
    const until = (id: number, state: string, timeoutMs = 90_000) =>
      eventually(
        async () => {
          await stepAll();
          const s = await showOf(shore, id);
          return s.rollout.state === state ? s : undefined;
        },
        timeoutMs,
        200,
      );
    const start = async (args: string[]) => {
      const out = JSON.parse(await cli(['rollout', 'start', ...args, '--json'])) as { id: number; waves: string[][] };
      return out;
    };

    // 1. Release 2: a 5% canary (one vessel) passes; 25% and 100% follow by themselves.
    const r2 = await start(['sms@2', '--target', 'group:fleet', '--waves', '5,25,100', '--min-success', '99.5%']);
    expect(r2.waves.map((w) => w.length)).toEqual([1, 4, 15]);
    await stepAll();
    const canaryDone = await showOf(shore, r2.id);
    expect(canaryDone.waves[0]!.vessels[0]!.outcome).toBe('installed-healthy');
    const done2 = await until(r2.id, 'completed');
    expect(done2.waves.map((w) => w.counts.succeeded)).toEqual([1, 4, 15]);
    expect(fleet.every((v) => v.running.get('sms') === '2')).toBe(true);
    const shown = await cli(['rollout', 'show', String(r2.id)]);
    if (process.env.ROLLOUT_SHOW_OUT) writeFileSync(process.env.ROLLOUT_SHOW_OUT, shown);
    expect(shown).toMatch(/wave 1 \(5%, canary\): started; 1 healthy, 0 failed, 0 held, 0 unfinished of 1/);
    expect(shown).toMatch(/wave 3 \(100%\): started; 15 healthy, 0 failed, 0 held, 0 unfinished of 15/);

    // 2. Release 3 fails its health gate on the canary: halted with the reason, the rest keep release 2.
    failing.add('sms@3');
    const r3 = await start(['sms@3', '--target', 'group:fleet', '--waves', '5,25,100', '--min-success', '99.5%']);
    const halted = await until(r3.id, 'halted');
    expect(halted.rollout.reason).toBe(
      'wave 1: 1 of 1 finished vessels failed; the rollout needs at least 99.5% successes',
    );
    expect(halted.waves[0]!.vessels[0]).toMatchObject({ outcome: 'failed', failure: 'gate-failed' });
    await stepAll();
    expect(fleet.filter((v) => v.running.get('sms') === '2')).toHaveLength(20);
    const showHalted = await cli(['rollout', 'show', String(r3.id)]);
    expect(showHalted).toMatch(/reason: wave 1: 1 of 1 finished vessels failed/);
    expect(showHalted).toMatch(/failed \(gate-failed\) — health gate failed/);

    // 3. Release 4 with --wave-quorum 80%: three vessels of the last wave are at sea, the rollout completes
    //    without them, and they install it when they come back.
    const r4 = await start([
      'sms@4',
      '--target',
      'group:fleet',
      '--waves',
      '5,25,100',
      '--max-failures',
      '0%',
      '--wave-quorum',
      '80%',
    ]);
    const lastWave = new Set(r4.waves[2]);
    const atSea = fleet.filter((v) => lastWave.has(v.name)).slice(0, 3);
    for (const v of atSea) v.online = false;
    const done4 = await until(r4.id, 'completed');
    expect(done4.waves[2]!.counts).toMatchObject({ succeeded: 12, unfinished: 3 });
    for (const v of atSea) expect(v.running.get('sms')).toBe('2');
    for (const v of atSea) v.online = true;
    await eventually(
      async () => {
        await stepAll();
        const s = await showOf(shore, r4.id);
        return s.waves[2]!.counts.succeeded === 15 ? s : undefined;
      },
      60_000,
      200,
    );
    expect(fleet.every((v) => v.running.get('sms') === '4')).toBe(true);

    // 4. Release 5, paused mid-wave; the hub process restarts; still paused; resumed, it completes.
    const restart = async () => {
      await shore.hub.stop('SIGTERM');
      await shore.start();
      ref.url = shore.url;
    };
    const r5 = await start(['sms@5', '--target', 'group:fleet', '--waves', '5,50,100']);
    await fleet.find((v) => v.name === r5.waves[0]![0])!.step();
    await eventually(async () => ((await showOf(shore, r5.id)).rollout.currentWave === 1 ? true : undefined));
    await cli(['rollout', 'pause', String(r5.id)]);
    await restart();
    await stepAll();
    const afterRestart = await showOf(shore, r5.id);
    expect(afterRestart.rollout).toMatchObject({ state: 'paused', currentWave: 1 });
    expect(afterRestart.waves[1]!.counts.succeeded).toBe(afterRestart.waves[1]!.counts.total);
    expect(afterRestart.waves[2]!.vessels.every((v) => v.startedAt === null)).toBe(true);
    await cli(['rollout', 'resume', String(r5.id)]);
    await until(r5.id, 'completed');
    expect(fleet.every((v) => v.running.get('sms') === '5')).toBe(true);

    // 5. Release 6 aborted mid-wave across restarts: vessels not yet started keep release 5.
    const r6 = await start(['sms@6', '--target', 'group:fleet', '--waves', '5,50,100']);
    await fleet.find((v) => v.name === r6.waves[0]![0])!.step();
    await eventually(async () => ((await showOf(shore, r6.id)).rollout.currentWave === 1 ? true : undefined));
    await restart();
    await cli(['rollout', 'abort', String(r6.id)]);
    await restart();
    await stepAll();
    const aborted = await showOf(shore, r6.id);
    expect(aborted.rollout.state).toBe('aborted');
    expect(aborted.rollout.reason).toMatch(/^aborted by ops:/);
    for (const m of aborted.waves[2]!.vessels) {
      expect(m.startedAt).toBeNull();
      expect(fleet.find((v) => v.name === m.vessel)!.running.get('sms')).toBe('5');
    }
    writeFileSync(join(shore.dir, 'journey-done'), 'ok');
  }, 900_000);
});
