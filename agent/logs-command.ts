import { intOpt, stringOpt, type Command } from '../shared/cli.js';
import { HUB_OPTIONS, opsRequest, resolveHubTarget } from '../shared/ops-client.js';
import { parseDuration } from '../shared/duration.js';
import { UsageError } from '../shared/errors.js';
import { loadAgentConfig, vesselPaths } from './config.js';
import { openOutbox } from './telemetry/outbox.js';
import { configPathOf } from './crew-commands.js';
import { bootId } from './state-store.js';

interface LogLine {
  service: string;
  level: string;
  line: string;
  at: string;
}

/** "15m", "2h" ago, or an ISO time. */
function sinceOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (/^\d+[smhd]$/.test(text)) return new Date(Date.now() - parseDuration(text, '--since')).toISOString();
  if (Number.isNaN(Date.parse(text)))
    throw new UsageError(`--since must be a duration (15m, 2h) or an ISO time, got ${JSON.stringify(text)}`);
  return new Date(text).toISOString();
}

export const logsCommand: Command = {
  path: ['logs'],
  args: '[SERVICE]',
  summary: 'recent logs: of this vessel from its local queue (no hub needed), or with --vessel NAME from the hub',
  options: {
    vessel: { type: 'string', description: 'read from the hub the logs shipped ashore by this vessel' },
    since: { type: 'string', description: 'only lines since this long ago (15m, 2h) or this ISO time' },
    grep: { type: 'string', description: 'only lines containing these words' },
    limit: { type: 'string', description: 'at most this many lines', default: '200' },
    config: { type: 'string', description: 'agent config file (local logs)', default: '/etc/tender/agent.json' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    const service = ctx.positionals[0];
    const limit = intOpt(ctx, 'limit', 200, 1, 10_000);
    const since = sinceOf(stringOpt(ctx, 'since'));
    const grep = stringOpt(ctx, 'grep');
    const vessel = stringOpt(ctx, 'vessel');
    if (vessel) {
      const q = new URLSearchParams({ limit: String(limit) });
      if (service) q.set('service', service);
      if (since) q.set('since', since);
      if (grep) q.set('grep', grep);
      return opsRequest<{ logs: LogLine[] }>(
        resolveHubTarget(ctx),
        'GET',
        `/api/v1/vessels/${encodeURIComponent(vessel)}/logs?${q}`,
      );
    }
    const config = loadAgentConfig(configPathOf(ctx));
    const outbox = openOutbox({
      path: vesselPaths(config.dataDir).outbox,
      bootId: bootId(),
      capBytes: config.telemetry.outboxCapBytes,
    });
    try {
      const words = grep?.toLowerCase().split(/\s+/).filter(Boolean) ?? [];
      const sinceMs = since ? Date.parse(since) : 0;
      const lines = outbox
        .recentLogs(service, words.length ? limit * 20 : limit)
        .filter((r) => r.ts >= sinceMs && words.every((w) => r.body.toLowerCase().includes(w)))
        .slice(-limit)
        .map((r) => ({
          service: r.source,
          level: r.cls >= 2 ? 'warn' : 'info',
          line: r.body,
          at: new Date(r.ts).toISOString(),
        }));
      return { logs: lines };
    } finally {
      outbox.close();
    }
  },
  human: (r: { logs: LogLine[] }) =>
    r.logs.map((l) => `${l.at} ${l.service}${l.level === 'warn' ? ' !' : ''} ${l.line}`).join('\n') || '(no lines)',
};
