import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import {
  CONSOLE_PASSWORD,
  composeFile,
  enrolVessel,
  freePort,
  startShore,
  waitServing,
  vesselReport,
} from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { LinkSim } from '../link-sim.js';
import { unique } from '../helpers/names.js';

type HubProgress = { done: number; total: number; bytesPerSecond?: number; etaSeconds?: number };

/**
 * A person waiting for a release sees how far it is, how fast it comes and how long is left: `tender
 * status`, the crew console and the hub's view of the vessel (what the fleet page shows), all while a
 * real agent downloads through a slow link from a real hub.
 */
describe('download progress', () => {
  it('shows percent, rate and time left in status, console and hub while a release comes down', async () => {
    const app = unique('dlprog');
    const tag = `tender-test/dlprog:${Date.now()}`;
    buildBusyboxImage({ tag, body: `progress ${tag}\n` });
    const shore = await startShore();
    // ~1 MB of packs at 60 kB/s: ~17 s of download to look at, so that a loaded machine, where each look
    // (two `tender` processes, the console, the hub) takes seconds, still sees it move more than once.
    const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(shore.url).port) }, { bytesPerSecond: 60_000 });
    const linkPort = await link.start();
    const vessel = await enrolVessel(shore, 'ship-p', { hub: shore.via(linkPort) });
    const port = await freePort();
    try {
      await vessel.startRouter();
      vessel.startAgent();
      const compose = composeFile(shore.dir, 'p1', tag, port, app);
      const pub = await tender(
        ['release', 'publish', '--compose', compose, '--key', shore.releaseKey, '--version', '1'],
        shore.env,
      );
      expect(pub.code, pub.stderr).toBe(0);
      // One engine here: remove the image so the vessel must fetch it over the link.
      execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
      expect((await tender(['rollout', 'start', `${app}@1`, '--target', 'vessel:ship-p'], shore.env)).code).toBe(0);
      const hubView = async () => {
        const res = await fetch(`${shore.url}/api/v1/vessels/ship-p`, {
          headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
        });
        return (await res.json()) as { status?: { apps?: { app: string; pending?: { progress?: HubProgress } }[] } };
      };

      const seen: { percent: number; bytesPerSecond: number; etaSeconds: number | null; total: number }[] = [];
      const lines: string[] = [];
      let consoleRow = '';
      let hubProgress: HubProgress | undefined;
      const auth = { authorization: `Basic ${Buffer.from(`crew:${CONSOLE_PASSWORD}`).toString('base64')}` };
      const deadline = Date.now() + 120_000;
      let served = false;
      while (!served && Date.now() < deadline) {
        const st = await vessel.status();
        if (st.download) {
          seen.push(st.download);
          const text = await tender(['status', '--config', vessel.config]);
          const l = text.stdout.split('\n').find((x) => x.startsWith('download   '));
          if (l) lines.push(l);
          const html = await fetch(vessel.consoleUrl, { headers: auth }).then((r) => r.text());
          consoleRow ||= /downloading \d+ %/.exec(html)?.[0] ?? '';
          const p = (await hubView()).status?.apps?.find((a) => a.app === app)?.pending?.progress;
          if (p && p.done > 0 && p.done < p.total) hubProgress ??= p;
        }
        served = st.services?.some((s: { state: string }) => s.state === 'running') && !st.download;
      }
      await waitServing(port, `progress ${tag}`, vessel, 60_000);
      const why = `seen ${JSON.stringify(seen)}\nlines ${lines.join(' | ')}\n${await vesselReport(vessel)}`;
      const moving = seen.filter((s) => s.percent > 0 && s.percent < 100);
      expect(moving.length, why).toBeGreaterThanOrEqual(2);
      expect(
        moving.every((s) => s.bytesPerSecond > 0 && s.etaSeconds !== null && s.etaSeconds > 0),
        why,
      ).toBe(true);
      // The rate is what the link carries (60 kB/s), not a figure from nowhere.
      const rate = moving[moving.length - 1]!.bytesPerSecond;
      expect(rate, why).toBeGreaterThan(20_000);
      expect(rate, why).toBeLessThan(100_000);
      // Percent never goes back, and the total stays what was missing at the start.
      for (let k = 1; k < seen.length; k++) expect(seen[k]!.percent, why).toBeGreaterThanOrEqual(seen[k - 1]!.percent);
      expect(new Set(moving.map((s) => s.total)).size, why).toBe(1);
      expect(
        lines.some((l) => /^download\s+\S+@\S+: \d+ % \(.+ of .+\), .+\/s, about .+ left$/.test(l)),
        why,
      ).toBe(true);
      expect(consoleRow, why).toMatch(/downloading \d+ %/);
      expect(hubProgress, why).toBeDefined();
      expect(hubProgress!.bytesPerSecond, why).toBeGreaterThan(0);
      // Live now: nothing downloading any more.
      expect((await vessel.status()).download, why).toBeNull();
    } finally {
      await link.close();
      removeAppContainers(app);
      execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
    }
  }, 240_000);
});
