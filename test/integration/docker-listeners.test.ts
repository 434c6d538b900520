import { execFileSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createDockerEngine } from '../../shared/docker.js';
import { buildBusyboxImage } from '../helpers/images.js';
import { cleanup } from '../helpers/cleanup.js';
import { unique } from '../helpers/names.js';
import { eventually } from '../helpers/proc.js';

/**
 * The agent hands the engine one signal that lives as long as it does (its stop signal). Every exec and
 * every log follow adds a listener to it; each must come off when its work ends, or a vessel running for
 * months keeps every finished exec's streams in memory (node warned of 11 listeners in a journey test).
 */
describe('docker engine: listeners on a long-lived signal', () => {
  it('leaves none behind after many execs and a log follow whose container went away', async () => {
    const name = unique('listeners');
    const tag = `tender-test/${name}:v1`;
    buildBusyboxImage({ tag, body: 'listeners\n' });
    cleanup(() => execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' }));
    const id = execFileSync('docker', ['run', '-d', '--name', name, tag]).toString().trim();
    cleanup(() => execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' }));
    const engine = createDockerEngine();
    const stop = new AbortController();
    const signal = stop.signal;
    for (let i = 0; i < 12; i++) {
      const r = await engine.exec(id, ['echo', `run ${i}`], { signal });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.toString().trim()).toBe(`run ${i}`);
    }
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    const lines: string[] = [];
    const following = engine.followLogs(id, undefined, signal, (_s, _ts, l) => lines.push(l));
    await eventually(async () => getEventListeners(signal, 'abort').length === 1, 10_000, 50);
    execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    await following;
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    expect(signal.aborted).toBe(false);
  }, 120_000);
});
