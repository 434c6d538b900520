import { opsCall, resolveHubTarget } from '../../shared/ops-client.js';
import type { CommandContext } from '../../shared/cli.js';
import type { LogLine } from '../../shared/protocol/bodies.js';
import { paths, ROUTES } from '../../shared/protocol/routes.js';

export type { LogLine };

export interface LogQuery {
  service?: string;
  since?: string;
  grep?: string;
  limit: number;
}

/** `tender logs --vessel NAME`: the lines a vessel shipped ashore, read from the hub. */
export function shoreLogs(ctx: CommandContext, vessel: string, q: LogQuery): Promise<{ logs: LogLine[] }> {
  return opsCall(resolveHubTarget(ctx), ROUTES.getLogs, paths.vesselLogs(vessel, q));
}
