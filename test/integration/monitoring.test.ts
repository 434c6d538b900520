import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { enrolVessel, startShore } from '../helpers/fleet.js';
import { startHub, enrolVessel as enrolInProcess } from '../helpers/hub.js';
import { eventually } from '../helpers/proc.js';
import { requireTool } from '../helpers/tools.js';
import { unique } from '../helpers/names.js';

/**
 * monitoring/ beside the status page (issue 12): the alert rules pass promtool's check and their own
 * unit tests (each alert fires on what should raise it, and not on a ship briefly out of coverage or a
 * draining backlog); every metric the rules and the Grafana dashboard name is one a real hub serves;
 * the hub's series stay bounded (no vessel name in /metrics unless per-vessel series are opted in).
 */
const DIR = join(import.meta.dirname, '..', '..', 'monitoring');
const RULES = join(DIR, 'tender-alerts.yml');

function promtool(args: string[]): { code: number; out: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Metric names an expression text uses (the exporters' families; `up` is Prometheus's own). */
function namesIn(text: string): Set<string> {
  return new Set(text.match(/\b(?:tender|process|nodejs)_[a-z0-9_]+/g) ?? []);
}

describe('monitoring/', () => {
  it('alert rules pass promtool check rules and their promtool unit tests', () => {
    requireTool('promtool');
    const check = promtool(['check', 'rules', RULES]);
    expect(check.code, check.out).toBe(0);
    expect(check.out).toMatch(/SUCCESS: 9 rules found/);
    const tests = promtool(['test', 'rules', 'tender-alerts.test.yml']);
    expect(tests.code, tests.out).toBe(0);
  });

  it('names only metrics a real hub serves, whose series stay bounded', async () => {
    requireTool('promtool');
    const shore = await startShore();
    const v = await enrolVessel(shore, unique('mon-ship'));
    v.startAgent();
    await eventually(async () => (await v.status()).link.state === 'up', 60_000);
    const served = async () => (await fetch(`${shore.url}/metrics`)).text();
    const text = await eventually(async () => {
      const t = await served();
      return (
        /tender_hub_http_requests_total\{route="\/api\/v1\/vessels\/:name\/desired",method="GET",code="2xx"\}/.test(
          t,
        ) && t
      );
    }, 30_000);
    const families = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(m[1]!, m[2]!);
    const known = (name: string) => {
      if (families.has(name)) return true;
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return families.get(base) === 'histogram' || families.get(base) === 'summary';
    };
    const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    const used = new Set([...namesIn(readFileSync(RULES, 'utf8')), ...namesIn(exprs)]);
    expect(used.size).toBeGreaterThan(10);
    const unknown = [...used].filter((n) => !known(n));
    expect(unknown, `not served by the hub: ${unknown.join(', ')}`).toEqual([]);
    // The fleet as the page counts it, and requests by route pattern: the vessel's name is in no series.
    expect(text).toMatch(/^tender_fleet_vessels\{state="online"\} 1$/m);
    expect(text).not.toContain(v.name);
    expect(text).not.toMatch(/^tender_vessel_backlog_records/m);
    // Prometheus's own lint of the exposition (names, units, help).
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = `${lint.stdout}${lint.stderr}`.split('\n').filter((l) => l.startsWith('tender_'));
    expect(problems).toEqual([]);
  }, 180_000);

  it('serves one series per vessel only when opted in', async () => {
    for (const perVesselMetrics of [false, true]) {
      const hub = await startHub({ perVesselMetrics });
      await enrolInProcess(hub, 'ship-a');
      const body = (await hub.app.inject('/metrics')).body;
      expect(body.includes('# TYPE tender_vessel_backlog_records gauge'), `opted in: ${perVesselMetrics}`).toBe(
        perVesselMetrics,
      );
      expect(body).toMatch(/^# TYPE tender_fleet_backlog_records gauge$/m);
    }
  });
});
