import type { CommandContext } from '../../shared/cli.js';
import { vesselPaths } from '../config.js';
import { openOutbox } from '../telemetry/outbox.js';
import { crewConfig } from './crew-commands.js';
import { bootId } from '../state-store.js';

export interface LocalLogLine {
  service: string;
  level: string;
  line: string;
  at: string;
}

/** `tender logs` on board: recent lines from the local telemetry queue, no hub needed. */
export function localLogs(
  ctx: CommandContext,
  q: { service?: string; since?: string; grep?: string; limit: number },
): { logs: LocalLogLine[] } {
  const config = crewConfig(ctx);
  const outbox = openOutbox({
    path: vesselPaths(config.dataDir).outbox,
    bootId: bootId(),
    capBytes: config.telemetry.outboxCapBytes,
  });
  try {
    const words = q.grep?.toLowerCase().split(/\s+/).filter(Boolean) ?? [];
    const sinceMs = q.since ? Date.parse(q.since) : 0;
    const lines = outbox
      .recentLogs(q.service, words.length ? q.limit * 20 : q.limit)
      .filter((r) => r.ts >= sinceMs && words.every((w) => r.body.toLowerCase().includes(w)))
      .slice(-q.limit)
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
}
