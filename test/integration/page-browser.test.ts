import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { launchBrowser, type Browser } from '../helpers/browser.js';
import { enrolVessel, startHub, type TestVessel } from '../helpers/hub.js';
import { signedManifest } from '../helpers/fake-engine.js';
import { paths } from '../../shared/protocol/routes.js';
import type { VesselStatusReport } from '../../shared/protocol/bodies.js';

/**
 * The status page in a real browser (Debian's Chromium, headless): a hub on a real port with a fleet of
 * 240 vessels, signed in through the form, searched, filtered, a vessel and a rollout opened, the
 * rollout paused with its button, a vessel gone stale once its agent stops calling. Screenshots of the
 * three pages go to test-artifacts/ (not committed).
 */
const ARTIFACTS = process.env.TENDER_ARTIFACTS ?? fileURLToPath(new URL('../../test-artifacts', import.meta.url));
const MIN = 60_000;

let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
});

const report = (i: number, over: Partial<VesselStatusReport> = {}): VesselStatusReport => ({
  agentVersion: '0.1.0',
  current: '1.0.0',
  previous: null,
  pending: null,
  held: false,
  rootVersion: 1,
  backlog: i % 7 ? 0 : 120 * i,
  services: [
    { name: 'portal', app: 'sms', release: '1.0.0', state: 'running', restarts: 0 },
    { name: 'db', app: 'sms', release: '1.0.0', state: 'healthy', restarts: 0 },
  ],
  bootId: 'boot',
  reportedAt: new Date().toISOString(),
  apps: [{ app: 'sms', live: '1.0.0', desired: '1.0.0', pending: null, held: false }],
  hold: null,
  link: {
    state: 'up',
    lastOkAt: null,
    lastError: null,
    rttMs: 600 + (i % 9) * 100,
    bytesUp24h: 40_000 + i,
    bytesDown24h: 30_000,
    requests24h: 96,
    failures24h: i % 11 ? 0 : 3,
  },
  ...over,
});

describe('status page in a browser', () => {
  it('signs in, searches, filters, opens a vessel and a rollout, pauses it, shows a vessel go stale', async () => {
    let clock = Date.now();
    const hub = await startHub({ now: () => clock });
    const url = await hub.listen();
    const s = hub.deps.store;
    // 240 vessels by the store (a fleet), six enrolled through the API that report over signed requests.
    for (let i = 0; i < 240; i++) {
      const v = await s.vessels.create(
        { name: `vessel-${String(i).padStart(3, '0')}`, groups: [i % 4 ? 'north-sea' : 'baltic'] },
        clock,
      );
      if (i < 220) await s.vessels.touch(v.id, '127.0.0.1', clock - (i < 200 ? MIN : 2 * 3600_000));
      if (i < 200)
        await s.vessels.report(v.id, {
          currentRelease: '1.0.0',
          agentVersion: '0.1.0',
          status: report(i),
          receivedAt: clock - MIN,
          flags: '',
        });
    }
    const ships: TestVessel[] = [];
    for (const name of ['ship-alpha', 'ship-bravo', 'ship-charlie'])
      ships.push(await enrolVessel(hub, name, ['north-sea']));
    const post = async (v: TestVessel, r: VesselStatusReport) => {
      const p = paths.vesselStatus(v.name);
      const { headers, payload } = v.sign('POST', p, r);
      expect((await hub.app.inject({ method: 'POST', url: p, headers, payload })).statusCode).toBe(204);
    };
    await post(ships[0]!, report(1));
    await post(
      ships[1]!,
      report(2, { services: [{ name: 'portal', app: 'sms', release: '1.0.0', state: 'exited', exitCode: 137 }] }),
    );
    await post(
      ships[2]!,
      report(3, {
        held: true,
        hold: { app: 'sms', sequence: 1 },
        apps: [
          { app: 'sms', live: '1.0.0', desired: '1.1.0', pending: { version: '1.1.0', state: 'held' }, held: true },
        ],
      }),
    );
    const m = signedManifest(hub.keys.release[0]!, { app: 'sms', version: '1.1.0', sequence: 2 });
    const rollout = await hub.rollout(await hub.publish(m.bytes), 'group:north-sea');

    browser = await launchBrowser();
    const page = await browser.page();
    await page.goto(`${url}/`);
    expect(await page.text('h1 + h1, main h1')).toBe('Sign in');
    // A token in a link is refused by the hub, and no session comes of it.
    await page.goto(`${url}/login?token=${hub.token('operator')}`);
    expect(await page.text('.error')).toMatch(/never accepted in a URL/);
    await page.goto(`${url}/`);
    expect(await page.text('main h1')).toBe('Sign in');
    await page.eval(`document.querySelector('#token').value = ${JSON.stringify(hub.token('operator'))}`);
    await page.navigating(`document.querySelector('form.login').requestSubmit()`);
    expect(await page.text('main h1')).toBe('Fleet');
    expect(await page.eval<boolean>('document.cookie.includes("tender_session")')).toBe(false); // HttpOnly
    expect(await page.text('.pager')).toMatch(/Vessels 1–50 of 243 · page 1 of 5/);
    expect(await page.text('.counts')).toMatch(/20 offline/);
    await page.screenshot(join(ARTIFACTS, 'fleet.png'));

    // Search by name from the form.
    await page.eval(`document.querySelector('input[name=q]').value = 'ship-'`);
    await page.navigating(`document.querySelector('form.filters').requestSubmit()`);
    expect(
      await page.eval<string[]>(`[...document.querySelectorAll('tbody tr')].map((r) => r.dataset.vessel)`),
    ).toEqual(['ship-alpha', 'ship-bravo', 'ship-charlie']);
    expect(await page.text('tr[data-vessel="ship-bravo"]')).toMatch(/portal exited \(code 137\)/);
    expect(await page.text('tr[data-vessel="ship-charlie"]')).toMatch(/sms → 1.1.0 held by crew/);
    // Filter by state with the count link, then by the select.
    await page.goto(`${url}/`);
    await page.navigating(
      `[...document.querySelectorAll('.counts a')].find((a) => /failing/.test(a.innerText)).click()`,
    );
    expect(
      await page.eval<string[]>(`[...document.querySelectorAll('tbody tr')].map((r) => r.dataset.vessel)`),
    ).toEqual(['ship-bravo']);
    await page.eval(`document.querySelector('select[name=state]').value = 'never'`);
    await page.eval(`document.querySelector('input[name=q]').value = ''`);
    await page.navigating(`document.querySelector('form.filters').requestSubmit()`);
    expect(await page.text('caption')).toBe('20 vessels match');
    // Sorting by a column header.
    await page.goto(`${url}/?group=baltic`);
    await page.navigating(
      `[...document.querySelectorAll('th a')].find((a) => a.innerText.startsWith('Vessel')).click()`,
    );
    expect(await page.eval<string>(`document.querySelector('tbody tr').dataset.vessel`)).toBe('vessel-236');

    // A vessel page.
    await page.goto(`${url}/?q=ship-bravo`);
    await page.navigating(`document.querySelector('a[href="/vessels/ship-bravo"]').click()`);
    expect(await page.text('main h1')).toBe('ship-bravo');
    expect(await page.text('#s-svc + table')).toMatch(/portal\s+1\.0\.0\s+exited \(code 137\)/);
    expect(await page.text('#s-ro + table')).toMatch(new RegExp(`#${rollout.id}\\s+sms@1\\.1\\.0\\s+active`));
    await page.screenshot(join(ARTIFACTS, 'vessel.png'));

    // The rollout page, paused with its button.
    await page.navigating(`document.querySelector('a[href="/rollouts/${rollout.id}"]').click()`);
    expect(await page.text('main h1')).toBe(`Rollout #${rollout.id}`);
    expect(await page.eval<string>(`document.querySelector('[data-state]').dataset.state`)).toBe('active');
    await page.screenshot(join(ARTIFACTS, 'rollout.png'));
    await page.navigating(`[...document.querySelectorAll('button')].find((b) => b.innerText === 'Pause').click()`);
    expect(await page.eval<string>(`document.querySelector('[data-state]').dataset.state`)).toBe('paused');
    expect((await s.rollouts.get(rollout.id))!.state).toBe('paused');

    // ship-alpha's agent stops: no more contact. Ten minutes on it is stale, twenty on offline, never green.
    await page.goto(`${url}/?q=ship-alpha`);
    expect(await page.eval<string>(`document.querySelector('tbody tr').dataset.contact`)).toBe('online');
    expect(await page.eval<number>(`document.querySelectorAll('tr[data-vessel="ship-alpha"] .ok').length`)).toBe(2);
    clock += 10 * MIN;
    await page.goto(`${url}/?q=ship-alpha`);
    expect(await page.eval<string>(`document.querySelector('tbody tr').dataset.contact`)).toBe('stale');
    expect(await page.text('tr[data-vessel="ship-alpha"]')).toMatch(/stale · 10 min ago/);
    clock += 10 * MIN;
    await page.goto(`${url}/?q=ship-alpha`);
    expect(await page.eval<string>(`document.querySelector('tbody tr').dataset.contact`)).toBe('offline');
    expect(await page.eval<number>(`document.querySelectorAll('tr[data-vessel="ship-alpha"] .ok').length`)).toBe(0);
    expect(await page.text('tr[data-vessel="ship-alpha"]')).toMatch(/2 running when last heard/);
  }, 120_000);
});
