import { z } from 'zod';
import { DISK_MARGIN_BYTES } from './release/transfer/disk-guard.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { loadJsonConfig } from '../shared/config-file.js';
import { windowSchema } from './release/transfer-policy.js';
import { backupConfigSchema } from './backup/config.js';
import { DEFAULT_CAP_BYTES as DEFAULT_OUTBOX_CAP_BYTES, DEFAULT_FREE_DISK_FLOOR_BYTES } from './telemetry/outbox.js';

export const DEFAULT_CONFIG_PATH = '/etc/tender/agent.json';
export const DEFAULT_DATA_DIR = '/var/lib/tender';

// Once a minute is quick enough that a rollout reaches a ship within minutes of its link coming up; a
// 304 costs a few hundred bytes of headers.
export const DEFAULT_POLL_INTERVAL_S = 60;
// Back off to at most 15 minutes when the hub is unreachable, so a link that returns is noticed soon.
export const DEFAULT_MAX_BACKOFF_S = 900;
export const DEFAULT_STALL_S = 60;

// All interfaces of the vessel LAN; the apps' users are on board.
export const DEFAULT_ROUTER_BIND = '0.0.0.0';
// The previous two releases stay on board besides the live one: enough to undo a bad week.
export const DEFAULT_KEEP_RELEASES = 3;
// Two minutes catches a service that crashes shortly after start or under its first real load.
export const DEFAULT_WATCH_S = 120;
// A dead service is noticed within this bound; each check is a few local inspect calls.
const DEFAULT_DRIFT_CHECK_S = 10;
// Loopback by default: exposing the console on the LAN is the crew's decision (--console-listen).
export const DEFAULT_CONSOLE_LISTEN = '127.0.0.1:8421';

// A minute of stats is enough to see a memory leak or a full disk coming, and cheap on the link.
export const DEFAULT_STATS_INTERVAL_S = 60;
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9842';

export const agentConfigSchema = z.strictObject({
  version: z.literal(1),
  hub: z.url(),
  vesselName: z.string().min(1),
  /** Null until an offline enrolment completes on first contact. */
  vesselId: z
    .string()
    .regex(/^v_[0-9a-f]{16}$/)
    .nullable(),
  dataDir: z.string().min(1),
  /**
   * How the hub's TLS is trusted: `pinned` (the certificates in dataDir/hub-ca.pem, pinned at enrolment,
   * more only by a signed announcement), `system` (an https:// hub behind a public CA), `insecure-http`
   * (plain text on the link, the operator's explicit choice). Absent in configs from before TLS: an
   * https:// hub then uses the system store, an http:// one is refused until this says insecure-http.
   */
  hubTrust: z.enum(['pinned', 'system', 'insecure-http']).optional(),
  /** One-time token from an offline enrolment file, used on first contact and then removed. */
  pendingToken: z.string().optional(),
  pollIntervalSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_POLL_INTERVAL_S),
  maxBackoffSeconds: z.number().int().min(1).max(86_400).default(DEFAULT_MAX_BACKOFF_S),
  /** Release downloads are kept under this many bytes per second (0: no cap). */
  releaseBytesPerSecond: z.number().int().min(0).default(0),
  /** UTC windows in which releases may be downloaded, e.g. ["02:00-06:00"]; empty: any time. */
  downloadWindows: z.array(windowSchema).max(24).default([]),
  /**
   * A release download that receives nothing for this long, or less than 1 KB/s over it, is dropped and
   * resumed at its byte: a link gone silent (a black hole) sends no reset, so TCP alone would wait on.
   */
  stallSeconds: z.number().int().min(2).max(3600).default(DEFAULT_STALL_S),
  /** Free disk kept beyond what a release needs (download plus images); short of it, nothing is fetched. */
  diskMarginBytes: z.number().int().min(0).default(DISK_MARGIN_BYTES),
  /** Download releases only while the crew has marked the link cheap (`tender link cheap`). */
  downloadOnlyWhenCheap: z.boolean().default(false),
  /** Where the router holds the apps' public ports: the vessel LAN. */
  routerBind: z.string().default(DEFAULT_ROUTER_BIND),
  /** Releases kept on board for rollback, the live one included. */
  keepReleases: z.number().int().min(2).max(20).default(DEFAULT_KEEP_RELEASES),
  /** After a flip, a crash loop or failing health within this window rolls back by itself. */
  watchSeconds: z.number().int().min(0).max(3600).default(DEFAULT_WATCH_S),
  /** How often the live release is checked for drift (a container gone, exited or replaced) and repaired. */
  driftCheckSeconds: z.number().int().min(1).max(3600).default(DEFAULT_DRIFT_CHECK_S),
  telemetry: z
    .strictObject({
      outboxCapBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(DEFAULT_OUTBOX_CAP_BYTES),
      freeDiskFloorBytes: z.number().int().min(0).default(DEFAULT_FREE_DISK_FLOOR_BYTES),
      /** Container and host stats this often; 0 turns them off (the hub's hostMetricsSeconds wins). */
      statsIntervalSeconds: z.number().int().min(0).max(86_400).default(DEFAULT_STATS_INTERVAL_S),
      /** Telemetry's share of the link, bytes per second; 0 means no cap. */
      maxBytesPerSecond: z.number().int().min(0).default(0),
      /** Where the agent serves /metrics for an onboard Prometheus; loopback by default. */
      metricsListen: z.string().default(DEFAULT_METRICS_LISTEN),
    })
    .default({
      outboxCapBytes: DEFAULT_OUTBOX_CAP_BYTES,
      freeDiskFloorBytes: DEFAULT_FREE_DISK_FLOOR_BYTES,
      statsIntervalSeconds: DEFAULT_STATS_INTERVAL_S,
      maxBytesPerSecond: 0,
      metricsListen: DEFAULT_METRICS_LISTEN,
    }),
  /** Backups by signed policy: where they live, the disk they leave free, how often schedules are checked. */
  backup: backupConfigSchema.prefault({}),
  console: z
    .strictObject({
      listen: z.string().default(DEFAULT_CONSOLE_LISTEN),
      /** scrypt hash of the crew password, set at enrolment. */
      passwordHash: z.string(),
      /**
       * HTTPS with a certificate the agent makes for itself (self-signed, kept in the data folder): the
       * password does not cross the vessel LAN in clear. The crew checks it by the fingerprint that
       * `tender status` shows.
       */
      tls: z.boolean().default(false),
    })
    .optional(),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export function loadAgentConfig(path: string): AgentConfig {
  return loadJsonConfig(path, agentConfigSchema);
}

export function writeAgentConfig(path: string, config: AgentConfig): void {
  // Group-readable: crew commands run by members of the `tender` group read it (no key is in it; the
  // console password is a scrypt hash, and a pending enrolment token works only with the vessel's key).
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, 0o640);
}

/** Where the vessel keeps its own files under dataDir. */
export function vesselPaths(dataDir: string) {
  return {
    key: `${dataDir}/vessel.key`,
    root: `${dataDir}/root.json`,
    db: `${dataDir}/agent.db`,
    releases: `${dataDir}/releases`,
    outbox: `${dataDir}/outbox.db`,
    /** The certificates pinned for the hub's TLS (PEM). */
    hubCa: `${dataDir}/hub-ca.pem`,
    /** The latest TLS session ticket per hub address, so a reboot still resumes. */
    tlsSession: `${dataDir}/tls-session.json`,
  };
}
