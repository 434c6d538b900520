import { execFileSync } from 'node:child_process';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { composeFile, enrolVessel, freePort, publishAndRollout, startShore, waitServing } from '../helpers/fleet.js';
import { eventually } from '../helpers/proc.js';
import { tempDir } from '../helpers/tmp.js';
import { unique } from '../helpers/names.js';

/**
 * Tender ships as one executable file: built with installer/build-sea.sh, copied away from the sources,
 * it runs a whole journey (keys, hub with its SQLite, OpenAPI document and status page, vessel enrolment,
 * agent, router, publish, rollout into Docker) with nothing read from beside the sources.
 */
describe('single executable', () => {
  const repo = join(import.meta.dirname, '..', '..');
  let exe = '';

  beforeAll(() => {
    const built = join(tempDir(), 'tender');
    execFileSync('bash', [join(repo, 'installer', 'build-sea.sh'), built], {
      cwd: repo,
      stdio: 'pipe',
      // A first build on a machine fetches the LTS Node and compiles the SQLite addon for it (.ci/run does
      // that up front).
      timeout: 400_000,
    });
    // Far from the repository: no node_modules, no sources, no SQL or HTML files to find.
    const away = tempDir('tender-sea-');
    exe = join(away, 'tender');
    copyFileSync(built, exe);
    execFileSync('chmod', ['0755', exe]);
    process.env.TENDER_TEST_EXECUTABLE = exe;
    process.env.TENDER_ADDON_DIR = join(away, 'addon');
  }, 420_000);

  afterAll(() => {
    delete process.env.TENDER_TEST_EXECUTABLE;
    delete process.env.TENDER_ADDON_DIR;
  });

  it('runs hub, agent and router from one file and deploys a release', async () => {
    expect(execFileSync(exe, ['--version'], { cwd: '/' }).toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const shore = await startShore();
    const auth = { headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` } };
    for (const path of ['/api/v1/openapi.json', '/api/v1/docs', '/health', '/login']) {
      const r = await fetch(`${shore.url}${path}`, auth);
      expect(r.status, path).toBeLessThan(400);
    }
    expect(
      ((await (await fetch(`${shore.url}/api/v1/openapi.json`, auth)).json()) as { openapi: string }).openapi,
    ).toMatch(/^3\./);
    expect(await (await fetch(`${shore.url}/login`)).text()).toContain('<form');
    // The API reference renders from the executable alone, without a token.
    expect(await (await fetch(`${shore.url}/api/v1/docs`)).text()).toContain('{name}/desired');
    const vessel = await enrolVessel(shore, 'sea-1');
    await vessel.startRouter();
    vessel.startAgent();
    await eventually(async () => (await vessel.status()).link.state === 'up', 30_000);
    const app = unique('seaapp');
    removeAppContainers(app);
    const tag = `tender-test/sea:${Date.now()}`;
    buildBusyboxImage({ tag, body: 'one file\n' });
    const port = await freePort();
    await publishAndRollout(shore, composeFile(shore.dir, 'sea', tag, port, app), '1', 'vessel:sea-1');
    await waitServing(port, 'one file', vessel);
    // The SQLite addon was unpacked from the executable, once, where it was told to go.
    expect(readdirSync(process.env.TENDER_ADDON_DIR!).filter((f) => f.endsWith('.node'))).toHaveLength(1);
    removeAppContainers(app);
  }, 180_000);
});
