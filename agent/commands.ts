import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { requiredOpt, stringOpt, type Command, type CommandContext } from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR, loadAgentConfig, vesselPaths } from './config.js';
import { enrolFromFile, enrolOnline, loadTrustedRoot } from './enrol.js';
import { runAgent } from './run.js';
import { openStateStore, type LinkState } from './state-store.js';
import type { DesiredState } from '../shared/api.js';
import type { ReleaseManifest } from '../shared/manifest.js';
import { createDockerEngine } from '../shared/docker.js';
import { createBoardReleases } from './board-releases.js';
import { createJournal } from './journal.js';
import { containerName } from './runtime.js';

const CONFIG_OPTION = { config: { type: 'string' as const, description: 'agent config file', default: DEFAULT_CONFIG_PATH } };
const configPathOf = (ctx: CommandContext) => stringOpt(ctx, 'config') ?? ctx.env.TENDER_AGENT_CONFIG ?? DEFAULT_CONFIG_PATH;

export const agentEnroll: Command = {
  path: ['agent', 'enroll'],
  summary: "enrol this vessel: make its key pair, register it with the hub, write the config and the trusted root",
  options: {
    ...CONFIG_OPTION,
    hub: { type: 'string', description: 'hub URL (online enrolment)' },
    token: { type: 'string', description: 'one-time enrolment token from `tender vessel add`' },
    file: { type: 'string', description: 'offline enrolment file from `tender vessel add --offline-file` (no link needed)' },
    data: { type: 'string', description: 'state directory (database, chunks, keys)', default: DEFAULT_DATA_DIR },
    force: { type: 'boolean', description: 'enrol again even though a config exists (new key)' },
  },
  async run(ctx) {
    const configPath = configPathOf(ctx);
    const dataDir = resolve(stringOpt(ctx, 'data') ?? DEFAULT_DATA_DIR);
    const file = stringOpt(ctx, 'file');
    const force = ctx.values.force === true;
    if (file) {
      if (stringOpt(ctx, 'token')) throw new UsageError('pass either --file or --hub with --token, not both');
      const c = enrolFromFile({ file, configPath, dataDir, force });
      return { vessel: c.vesselName, hub: c.hub, config: configPath, dataDir, mode: 'offline', note: 'enrolment completes on first contact with the hub' };
    }
    const c = await enrolOnline({ hub: requiredOpt(ctx, 'hub'), token: requiredOpt(ctx, 'token'), configPath, dataDir, force });
    return { vessel: c.vesselName, vesselId: c.vesselId, hub: c.hub, config: configPath, dataDir, mode: 'online' };
  },
  human: (r: { vessel: string; config: string; mode: string; note?: string }) =>
    `enrolled as ${r.vessel} (${r.mode}); config written to ${r.config}${r.note ? `; ${r.note}` : ''}`,
};

export const agentRun: Command = {
  path: ['agent', 'run'],
  summary: 'run the vessel agent (normally as the tender-agent systemd service)',
  options: CONFIG_OPTION,
  async run(ctx) {
    const log = createLogger('agent');
    const controller = new AbortController();
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      controller.abort();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    await runAgent({ configPath: configPathOf(ctx), log, signal: controller.signal });
    return undefined;
  },
};

interface StatusView {
  vessel: string;
  hub: string;
  enrolment: 'complete' | 'pending first contact';
  release: { current: string | null; previous: string | null; pending: string | null; held: boolean; desired: string | null };
  link: { state: LinkState; lastOk: string | null; lastError: string | null };
  lastSync: string | null;
  backlog: number;
  rootVersion: number;
  services: { name: string; state: string; detail?: string }[];
  lastResult: { version: string; result: string; reason: string | null; at: string } | null;
  lastUpdate: { kind: string; from: string | null; to: string; state: string; reason: string | null } | null;
}

export const vesselStatus: Command = {
  path: ['status'],
  summary: 'this vessel: current, previous and pending release, link state, backlog, last sync (no hub needed)',
  options: CONFIG_OPTION,
  async run(ctx): Promise<StatusView> {
    const config = loadAgentConfig(configPathOf(ctx));
    const paths = vesselPaths(config.dataDir);
    const root = loadTrustedRoot(config.dataDir);
    if (!existsSync(paths.db)) {
      return {
        vessel: config.vesselName,
        hub: config.hub,
        enrolment: config.pendingToken ? 'pending first contact' : 'complete',
        release: { current: null, previous: null, pending: null, held: false, desired: null },
        link: { state: 'unknown', lastOk: null, lastError: null },
        lastSync: null,
        backlog: 0,
        rootVersion: root.version,
        services: [],
        lastResult: null,
        lastUpdate: null,
      };
    }
    const store = openStateStore(paths.db);
    try {
      const releases = createBoardReleases(store.db);
      const live = releases.live();
      const services = live ? await serviceHealth(live.version, releases.manifest(live.version, root)) : [];
      const last = createJournal(store.db).recent(1)[0];
      const g = <T>(k: string) => store.get<T>(k) ?? null;
      return {
        vessel: config.vesselName,
        hub: config.hub,
        enrolment: config.pendingToken ? 'pending first contact' : 'complete',
        release: {
          current: g<string>('release.current'),
          previous: g<string>('release.previous'),
          pending: g<string>('release.pending'),
          held: g<boolean>('release.held') ?? false,
          desired: g<DesiredState>('desired')?.release?.version ?? null,
        },
        link: { state: g<LinkState>('link.state') ?? 'unknown', lastOk: g<string>('link.lastOk'), lastError: g<string>('link.lastError') },
        lastSync: g<string>('sync.lastAt'),
        backlog: store.backlog(),
        rootVersion: root.version,
        services,
        lastResult: g('release.lastResult'),
        lastUpdate: last ? { kind: last.kind, from: last.from, to: last.to, state: last.state, reason: last.reason } : null,
      };
    } finally {
      store.close();
    }
  },
  human: (s: StatusView) =>
    [
      `vessel     ${s.vessel}${s.enrolment === 'complete' ? '' : ` (${s.enrolment})`}`,
      `release    current ${s.release.current ?? 'none'}, previous ${s.release.previous ?? 'none'}, pending ${s.release.pending ?? 'none'}${s.release.held ? ' (held by crew)' : ''}`,
      `link       ${s.link.state}${s.link.lastOk ? `, last ok ${s.link.lastOk}` : ''}${s.link.state !== 'up' && s.link.lastError ? ` (${s.link.lastError})` : ''}`,
      `last sync  ${s.lastSync ?? 'never'}`,
      `update     ${s.lastUpdate ? `${s.lastUpdate.kind} ${s.lastUpdate.from ?? 'none'} -> ${s.lastUpdate.to}: ${s.lastUpdate.state}${s.lastUpdate.reason ? ` (${s.lastUpdate.reason})` : ''}` : 'none yet'}`,
      `backlog    ${s.backlog} records`,
      `trust      root v${s.rootVersion}`,
      `services   ${s.services.length ? s.services.map((x) => `${x.name}: ${x.state}${x.detail ? ` (${x.detail})` : ''}`).join(', ') : 'none deployed'}`,
      `hub        ${s.hub}`,
    ].join('\n'),
};

async function serviceHealth(version: string, m: ReleaseManifest): Promise<StatusView['services']> {
  const docker = createDockerEngine();
  const out: StatusView['services'] = [];
  for (const name of Object.keys(m.services)) {
    try {
      const info = await docker.inspectContainer(containerName(m.app, name, version));
      if (!info) out.push({ name, state: 'missing' });
      else if (!info.running) out.push({ name, state: 'stopped', detail: `exit code ${info.exitCode}` });
      else if (info.health === 'unhealthy') out.push({ name, state: 'unhealthy' });
      else out.push({ name, state: info.health === 'starting' ? 'starting' : 'running', detail: info.restartCount ? `${info.restartCount} restarts` : undefined });
    } catch {
      out.push({ name, state: 'unknown', detail: 'docker not reachable' });
    }
  }
  return out;
}

export const AGENT_COMMANDS = [agentEnroll, agentRun, vesselStatus];
