import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { enrolVessel, freePort, startShore } from '../helpers/fleet.js';
import { eventually } from '../helpers/proc.js';
import { cleanup } from '../helpers/cleanup.js';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';

/** A real Prometheus (Debian package) scrapes the hub's and the agent's /metrics. */
describe('metrics endpoints', () => {
  it('are scraped by a real Prometheus with both targets up', async () => {
    requireTool('prometheus');
    const shore = await startShore();
    const v = await enrolVessel(shore, 'prom-ship');
    v.startAgent();
    await eventually(async () => (await v.status()).link.state === 'up');
    const dir = tempDir('tender-prom-');
    const hub = new URL(shore.url);
    const agent = new URL(v.metricsUrl);
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: hub
    scheme: ${hub.protocol.slice(0, -1)}
    tls_config: { ca_file: '${shore.ca?.certFile ?? ''}' }
    static_configs: [{ targets: ['${hub.host}'] }]
  - job_name: agent
    static_configs: [{ targets: ['${agent.host}'] }]
`,
    );
    const port = await freePort();
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    );
    cleanup(() => prom.kill('SIGKILL'));
    const api = `http://127.0.0.1:${port}/api/v1`;
    const targets = await eventually(
      async () => {
        const r = (await (await fetch(`${api}/targets`)).json()) as {
          data: { activeTargets: { labels: { job: string }; health: string; lastError: string }[] };
        };
        const t = r.data.activeTargets;
        return t.length === 2 && t.every((x) => x.health === 'up') && t;
      },
      40_000,
      500,
    );
    expect(targets.map((t) => t.labels.job).sort()).toEqual(['agent', 'hub']);
    const q = async (expr: string) =>
      (
        (await (await fetch(`${api}/query?query=${encodeURIComponent(expr)}`)).json()) as {
          data: { result: { value: [number, string] }[] };
        }
      ).data.result;
    expect((await q('tender_vessels_active'))[0]!.value[1]).toBe('1');
    expect((await q('tender_agent_link_up'))[0]!.value[1]).toBe('1');
    expect(await q('tender_agent_outbox_records')).toHaveLength(5);
  });
});
