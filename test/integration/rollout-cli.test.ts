import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkDirective } from '../../agent/release/rollback-directives.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import { sha256Hex } from '../../shared/trust/secrets.js';
import { startShore } from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { enrolSimVessel, publishSimRelease, type SimVessel } from '../helpers/sim-vessel.js';

/**
 * The rollout and window commands against a real hub process, with simulated vessels reporting through
 * telemetry: start in waves, show per wave and per vessel, pause/resume/abort, list; windows set, listed,
 * cleared, a bad one refused in one line; and `--rollback --key` signing a directive on this machine that
 * the vessel's own check accepts for the vessel it names, and refuses for another vessel, another app,
 * after its expiry and as a replay.
 */
const CLI_MS = 120_000;

describe('tender rollout and tender window', () => {
  it('drives a rollout from the CLI and signs a rollback directive the vessel accepts', async () => {
    const shore = await startShore();
    const env = shore.env;
    const op = env.TENDER_TOKEN!;
    const ref = { url: shore.url };
    const fleet: SimVessel[] = [];
    for (const n of ['cli-a', 'cli-b', 'cli-c', 'cli-d'])
      fleet.push(await enrolSimVessel(ref, op, n, ['north'], () => 'healthy'));
    const v1 = await publishSimRelease(shore.url, op, shore.releaseKey, { app: 'sms', version: '1', sequence: 1 });
    await publishSimRelease(shore.url, op, shore.releaseKey, { app: 'sms', version: '2', sequence: 2 });
    const run = (args: string[]) => tender(args, env, CLI_MS);

    // Bad input: one line each, exit 2 or 1, nothing started.
    for (const [args, line] of [
      [['rollout', 'start', 'sms@2', '--target', 'all', '--waves', '50,25,100'], '--waves must increase: 50% then 25%'],
      [
        ['rollout', 'start', 'sms@2', '--target', 'all', '--min-success', '101%'],
        '--min-success: 101% is outside 0-100%',
      ],
      [['rollout', 'start', 'sms@9', '--target', 'all'], 'no release sms@9 on the hub'],
      [['window', 'set', 'group:north', 'Mon-Thu 02:00-04:00 Mars/Olympus'], 'Mars/Olympus'],
    ] as const) {
      const r = await run([...args]);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toContain(line);
    }
    expect(JSON.parse((await run(['rollout', 'list', '--json'])).stdout).rollouts).toEqual([]);

    const start = await run([
      'rollout',
      'start',
      'sms@1',
      '--target',
      'group:north',
      '--waves',
      '25,100',
      '--canary',
      'vessel:cli-c',
      '--min-success',
      '99.5%',
      '--wave-deadline',
      '72h',
    ]);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/^rollout 1: sms@1 to 4 vessel\(s\) in 2 wave\(s\); wave 1: cli-c$/m);
    expect((await run(['rollout', 'pause', '1'])).stdout.trim()).toBe('rollout 1: paused');
    await Promise.all(fleet.map((v) => v.step()));
    const paused = await run(['rollout', 'show', '1']);
    expect(paused.stdout).toMatch(/wave 1 \(25%, canary\): started; 1 healthy, 0 failed, 0 held, 0 unfinished of 1/);
    expect(paused.stdout).toMatch(/cli-a\s+not started \(keeps its release\)/);
    expect((await run(['rollout', 'resume', '1'])).stdout.trim()).toBe('rollout 1: active');
    const shown = await eventually(async () => {
      await Promise.all(fleet.map((v) => v.step()));
      const s = await run(['rollout', 'show', '1']);
      return s.stdout.includes('— completed') ? s.stdout : undefined;
    }, 60_000);
    expect(shown).toMatch(/wave 2 \(100%\): started; 3 healthy, 0 failed, 0 held, 0 unfinished of 3/);
    expect(shown).toMatch(/cli-c\s+installed-healthy/);
    const list = await run(['rollout', 'list']);
    expect(list.stdout).toMatch(/1\s+sms@1\s+release\s+group:north\s+completed\s+2\/2\s+4/);
    const finished = await run(['rollout', 'abort', '1']);
    expect(finished.code).not.toBe(0);
    expect(finished.stderr.trim().split('\n')).toHaveLength(1);

    // Windows: set for the group, listed, cleared.
    expect((await run(['window', 'set', 'group:north', 'Mon-Thu 02:00-04:00 UTC'])).stdout.trim()).toBe(
      'window of group:north: Mon-Thu 02:00-04:00 UTC',
    );
    expect((await run(['window', 'list'])).stdout).toMatch(/group:north\s+Mon-Thu 02:00-04:00 UTC/);
    expect((await run(['window', 'clear', 'group:north'])).stdout.trim()).toBe('window of group:north cleared');
    expect((await run(['window', 'clear', 'group:north'])).stdout.trim()).toBe('group:north had no window');

    // Download settings from the hub reach the vessel's desired state; cleared, they are gone.
    const set = await run([
      'settings',
      'set',
      'group:north',
      '--release-bytes-per-second',
      '5000',
      '--download-window',
      'daily 01:00-03:00',
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect((await run(['settings', 'list'])).stdout).toMatch(
      /group:north\s+\{"releaseBytesPerSecond":5000,"downloadWindows":\["daily 01:00-03:00"\]\}/,
    );
    const withSettings = await fetch(`${shore.url}/api/v1/vessels/cli-a/desired`, {
      headers: { authorization: `Bearer ${op}` },
    });
    expect(((await withSettings.json()) as { settings?: unknown }).settings).toEqual({
      downloadWindows: ['daily 01:00-03:00'],
      releaseBytesPerSecond: 5000,
    });
    const badSetting = await run(['settings', 'set', 'group:north', '--download-window', 'Mon 25:00-26:00']);
    expect(badSetting.stderr.trim().split('\n')).toHaveLength(1);
    expect((await run(['settings', 'clear', 'group:north'])).stdout.trim()).toBe('settings of group:north cleared');

    // Release 2 everywhere, then back to 1 with a directive signed here for vessel cli-a only.
    const up = await run(['rollout', 'start', 'sms@2', '--target', 'group:north']);
    expect(up.code, up.stderr).toBe(0);
    await eventually(async () => {
      await Promise.all(fleet.map((v) => v.step()));
      return fleet.every((v) => v.running.get('sms') === '2');
    }, 60_000);
    const noKey = await run(['rollout', 'start', 'sms@1', '--target', 'vessel:cli-a', '--rollback']);
    expect(noKey.stderr.trim()).toMatch(/--key is required/);
    const back = await run([
      'rollout',
      'start',
      'sms@1',
      '--target',
      'vessel:cli-a',
      '--rollback',
      '--key',
      shore.releaseKey,
      '--expires',
      '1h',
      '--reason',
      'sms 2 drops messages',
      '--json',
    ]);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout).rollout).toMatchObject({ kind: 'rollback', app: 'sms', version: '1' });

    // The directive reaches vessel cli-a (and only it) in its desired state; the vessel's own check decides.
    const desiredOf = async (name: string) => {
      const path = `/api/v1/vessels/${name}/desired`;
      const d = await fetch(`${shore.url}${path}`, { headers: { authorization: `Bearer ${op}` } });
      return (await d.json()) as { directives?: string[]; apps?: { app: string; version: string; digest: string }[] };
    };
    const a = await desiredOf('cli-a');
    expect(a.directives).toHaveLength(1);
    expect((await desiredOf('cli-b')).directives).toBeUndefined();
    const root = verifyInitialRoot(readFileSync(join(shore.dir, 'keys', 'root.json')));
    const target = { app: 'sms', version: '1', digest: sha256Hex(v1) };
    const ctx = { root, vessel: 'cli-a', groups: ['north'], now: Date.now(), lastCounter: 0 };
    const d = a.directives![0]!;
    expect(checkDirective(d, target, ctx)).toMatchObject({
      ok: true,
      directive: { counter: 1, reason: 'sms 2 drops messages' },
    });
    expect(checkDirective(d, target, { ...ctx, vessel: 'cli-b', groups: ['north'] })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('does not name this vessel (cli-b)'),
    });
    expect(checkDirective(d, { ...target, app: 'nav' }, ctx)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('is for app sms, not nav'),
    });
    expect(checkDirective(d, target, { ...ctx, now: Date.now() + 2 * 3600_000 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('expired at'),
    });
    expect(checkDirective(d, target, { ...ctx, lastCounter: 1 })).toMatchObject({
      ok: false,
      reason: expect.stringContaining('replayed'),
    });
    // A second rollback signs the next counter: the hub hands out counters above every stored one.
    const again = await run([
      'rollout',
      'start',
      'sms@1',
      '--target',
      'vessel:cli-b',
      '--rollback',
      '--key',
      shore.releaseKey,
    ]);
    expect(again.code, again.stderr).toBe(0);
    const b = await desiredOf('cli-b');
    expect(checkDirective(b.directives![0]!, target, { ...ctx, vessel: 'cli-b', lastCounter: 1 })).toMatchObject({
      ok: true,
      directive: { counter: 2 },
    });
  }, 600_000);
});
