import { opsRequest, resolveHubTarget } from '../../shared/ops-client.js';
import type { CommandContext } from '../../shared/cli.js';

export interface LogLine {
  service: string;
  level: string;
  line: string;
  at: string;
}

export interface LogQuery {
  service?: string;
  since?: string;
  grep?: string;
  limit: number;
}

/** `tender logs --vessel NAME`: the lines a vessel shipped ashore, read from the hub. */
export function shoreLogs(ctx: CommandContext, vessel: string, q: LogQuery): Promise<{ logs: LogLine[] }> {
  const params = new URLSearchParams({ limit: String(q.limit) });
  if (q.service) params.set('service', q.service);
  if (q.since) params.set('since', q.since);
  if (q.grep) params.set('grep', q.grep);
  return opsRequest<{ logs: LogLine[] }>(
    resolveHubTarget(ctx),
    'GET',
    `/api/v1/vessels/${encodeURIComponent(vessel)}/logs?${params}`,
  );
}
