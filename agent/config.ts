import { z } from 'zod';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { loadJsonConfig } from '../shared/config-file.js';

export const DEFAULT_CONFIG_PATH = '/etc/tender/agent.json';
export const DEFAULT_DATA_DIR = '/var/lib/tender';

// Once a minute is quick enough that a rollout reaches a ship within minutes of its link coming up; a
// 304 costs a few hundred bytes of headers.
export const DEFAULT_POLL_INTERVAL_S = 60;
// Back off to at most 15 minutes when the hub is unreachable, so a link that returns is noticed soon.
export const DEFAULT_MAX_BACKOFF_S = 900;

export const agentConfigSchema = z.strictObject({
  version: z.literal(1),
  hub: z.url(),
  vesselName: z.string().min(1),
  /** Null until an offline enrolment completes on first contact. */
  vesselId: z.string().regex(/^v_[0-9a-f]{16}$/).nullable(),
  dataDir: z.string().min(1),
  /** One-time token from an offline enrolment file, used on first contact and then removed. */
  pendingToken: z.string().optional(),
  pollIntervalSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_POLL_INTERVAL_S),
  maxBackoffSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_MAX_BACKOFF_S),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export function loadAgentConfig(path: string): AgentConfig {
  return loadJsonConfig(path, agentConfigSchema);
}

export function writeAgentConfig(path: string, config: AgentConfig): void {
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

/** Where the vessel keeps its own files under dataDir. */
export function vesselPaths(dataDir: string) {
  return {
    key: `${dataDir}/vessel.key`,
    root: `${dataDir}/root.json`,
    db: `${dataDir}/agent.db`,
  };
}
