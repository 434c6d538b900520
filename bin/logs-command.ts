import { intOpt, stringOpt, type Command } from '../shared/cli.js';
import { HUB_OPTIONS } from '../shared/ops-client.js';
import { parseDuration } from '../shared/duration.js';
import { UsageError } from '../shared/errors.js';
import { shoreLogs, type LogLine } from '../hub/commands/logs-query.js';
import { localLogs } from '../agent/crew/logs-command.js';

/** "15m", "2h" ago, or an ISO time. */
function sinceOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (/^\d+[smhd]$/.test(text)) return new Date(Date.now() - parseDuration(text, '--since')).toISOString();
  if (Number.isNaN(Date.parse(text)))
    throw new UsageError(`--since must be a duration (15m, 2h) or an ISO time, got ${JSON.stringify(text)}`);
  return new Date(text).toISOString();
}

/**
 * `tender logs` is one command on two sides: on board it reads the local queue; with --vessel it asks the
 * hub. The two implementations live with their side; only this dispatcher knows both.
 */
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
    const q = {
      service: ctx.positionals[0],
      limit: intOpt(ctx, 'limit', 200, 1, 10_000),
      since: sinceOf(stringOpt(ctx, 'since')),
      grep: stringOpt(ctx, 'grep'),
    };
    const vessel = stringOpt(ctx, 'vessel');
    return vessel ? shoreLogs(ctx, vessel, q) : localLogs(ctx, q);
  },
  human: (r: { logs: LogLine[] }) =>
    r.logs.map((l) => `${l.at} ${l.service}${l.level === 'warn' ? ' !' : ''} ${l.line}`).join('\n') || '(no lines)',
};
