import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { RUN_ID, unique } from '../helpers/names.js';

/**
 * `npm test` beside a developer's demo on the same engine (issue 16): the demo's app is `sms`, its container
 * `tender-sms-portal-1.0.0`. Every test names its apps for its run and cleans up only those, so the demo
 * is never stopped, removed or clashed with.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const demo = `tender-demo-guard-${RUN_ID}`;
const image = `tender-test/guard${RUN_ID}:1`;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

afterAll(() => {
  execFileSync('docker', ['rm', '-f', demo], { stdio: 'ignore' });
  execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
});

describe('a test run touches only what it made', () => {
  it("leaves a demo's container alone: test cleanup refuses an app not named for its run", () => {
    buildBusyboxImage({ tag: image, body: 'demo\n' });
    // A container as the demo's agent makes it: app sms, managed by Tender, another vessel.
    execFileSync('docker', [
      'create',
      '--name',
      demo,
      '--label',
      'io.tender.app=sms',
      '--label',
      'io.tender.managed=1',
      '--label',
      'io.tender.vessel=demo-ship',
      image,
    ]);
    expect(() => removeAppContainers('sms')).toThrow(/not an app of this run/);
    // What the swap journey names its app (unique('sms')) and cleans up is not the demo's.
    removeAppContainers(unique('sms'));
    expect(
      execFileSync('docker', ['ps', '-aq', '--filter', `name=^${demo}$`])
        .toString()
        .trim(),
    ).not.toBe('');
  });

  it('no test or bench on the real engine names an app, container or label filter literally', () => {
    const offenders: string[] = [];
    // Unit tests run on an engine in memory (test/helpers/fake-engine.ts): only these reach Docker.
    for (const file of [...sources('test/integration'), ...sources('test/helpers'), ...sources('bench')]) {
      if (file.endsWith('run-isolation.test.ts')) continue;
      const text = readFileSync(file, 'utf8');
      const rel = file.slice(ROOT.length + 1);
      // A literal app in a cleanup, a label filter on a fixed app, or a fixed Tender container name.
      for (const re of [/removeAppContainers\(\s*['"]/g, /io\.tender\.app=[a-z0-9]/g, /['"`]tender-[a-z0-9]+-portal-/g])
        for (const m of text.matchAll(re)) offenders.push(`${rel}: ${m[0]}`);
    }
    expect(offenders).toEqual([]);
  });
});
