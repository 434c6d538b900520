import { userInfo } from 'node:os';
import { stringOpt, type Command, type CommandContext } from '../../shared/cli.js';
import { UsageError } from '../../shared/errors.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import { createDockerEngine } from '../../shared/docker.js';
import { createLogger } from '../../shared/log.js';
import { DEFAULT_CONFIG_PATH, loadAgentConfig, vesselPaths, type AgentConfig } from '../config.js';
import { loadTrustedRoot } from '../enrol.js';
import { openStateStore, type StateStore } from '../state-store.js';
import { createController, type Controller, type RollbackResult } from '../release/controller.js';
import { rollbackViaAgent } from './control-socket.js';
import { progressTo } from '../../shared/progress.js';
import { routerPaths, runRouter } from '../router/control.js';
import { actAsDataOwner } from '../data-owner.js';

const CONFIG_OPTION = {
  config: { type: 'string' as const, description: 'agent config file', default: DEFAULT_CONFIG_PATH },
};
export const configPathOf = (ctx: CommandContext) =>
  stringOpt(ctx, 'config') ?? ctx.env.TENDER_AGENT_CONFIG ?? DEFAULT_CONFIG_PATH;

/** Who is at the keyboard: the local user (and the sudo caller), recorded with every crew action. */
export function localActor(env: NodeJS.ProcessEnv): string {
  const uid = process.getuid?.() ?? -1;
  let name = env.USER ?? 'unknown';
  try {
    name = userInfo().username;
  } catch {
    /* no passwd entry in a container */
  }
  return `uid ${uid} (${name}${env.SUDO_USER ? `, via sudo by ${env.SUDO_USER}` : ''})`;
}

/** The vessel's config for a crew command; from here on the command acts as the owner of the state. */
export function crewConfig(ctx: CommandContext): AgentConfig {
  const config = loadAgentConfig(configPathOf(ctx));
  actAsDataOwner(config.dataDir);
  return config;
}

/**
 * A controller for a crew command: the same code the agent runs, with no hub. `actor` is who typed the
 * command, taken before acting as the owner of the state.
 */
export async function withController<T>(
  ctx: CommandContext,
  fn: (c: Controller, store: StateStore, config: AgentConfig, actor: string) => Promise<T>,
): Promise<T> {
  const actor = localActor(ctx.env);
  const config = crewConfig(ctx);
  const store = openStateStore(vesselPaths(config.dataDir), { outboxCapBytes: config.telemetry.outboxCapBytes });
  const root = loadTrustedRoot(config.dataDir);
  try {
    const c = createController({
      vessel: config.vesselName,
      chunks: createChunkStore(`${config.dataDir}/chunks`),
      docker: createDockerEngine(),
      store,
      routerSocket: routerPaths(config.dataDir).socket,
      root: () => root,
      keepReleases: config.keepReleases,
      watchMs: config.watchSeconds * 1000,
      log: createLogger('crew', ctx.env.TENDER_LOG_LEVEL ?? 'warn'),
    });
    return await fn(c, store, config, actor);
  } finally {
    store.close();
  }
}

export const routerRun: Command = {
  path: ['router', 'run'],
  summary: "run the router that holds the apps' public ports (normally as the tender-router systemd service)",
  options: CONFIG_OPTION,
  async run(ctx) {
    const config = loadAgentConfig(configPathOf(ctx));
    const log = createLogger('router');
    const controller = new AbortController();
    process.once('SIGTERM', () => controller.abort());
    process.once('SIGINT', () => controller.abort());
    await runRouter({ dataDir: config.dataDir, bind: config.routerBind, log, signal: controller.signal });
    return undefined;
  },
};

interface ReleasesView {
  releases: {
    version: string;
    app: string;
    sequence: number;
    state: string;
    installedAt: string;
    lastLiveAt: string | null;
    failedReason: string | null;
  }[];
  held: boolean;
}

export const releasesCommand: Command = {
  path: ['releases'],
  summary: 'the releases kept on board, and which one is live',
  options: CONFIG_OPTION,
  async run(ctx): Promise<ReleasesView> {
    return withController(ctx, async (c, store) => ({
      held: store.get('crew.hold') !== undefined,
      releases: c.releases.list().map((r) => ({
        version: r.version,
        app: r.app,
        sequence: r.sequence,
        state: r.state,
        installedAt: new Date(r.installedAt).toISOString(),
        lastLiveAt: r.lastLiveAt ? new Date(r.lastLiveAt).toISOString() : null,
        failedReason: r.failedReason,
      })),
    }));
  },
  human: (v: ReleasesView) => {
    if (v.releases.length === 0) return 'no releases on board yet';
    const lines = v.releases.map((r) => {
      const lastLive = r.lastLiveAt ? `last live ${r.lastLiveAt.slice(0, 16).replace('T', ' ')}` : 'never live';
      return (
        `${r.state === 'live' ? '*' : ' '} ${r.version.padEnd(20)} #${String(r.sequence).padEnd(5)} ` +
        `${r.state.padEnd(7)} ${lastLive}${r.failedReason ? `  (${r.failedReason})` : ''}`
      );
    });
    const held = '\nheld by the crew: the shore target is not applied until `tender resume`';
    return `${lines.join('\n')}${v.held ? held : ''}`;
  },
};

export const rollbackCommand: Command = {
  path: ['rollback'],
  args: '[RELEASE]',
  summary: 'put the previous (or the named) release kept on board back in service, now, with no link; holds it',
  details:
    'Accepted whatever the agent is doing: a drain or health gate under way is cut short (and said so), a ' +
    'download goes on beside it. Each step is printed as it happens (on stderr); the command returns once the ' +
    'release serves through the router, and the running agent finishes the tidy-up (drain, stop, prune).',
  options: CONFIG_OPTION,
  async run(ctx) {
    const target = ctx.positionals[0];
    const t0 = Date.now();
    const progress = progressTo(ctx.stderr);
    const say = (line: string) => progress.line(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s  ${line}`);
    return withController(ctx, async (c, _store, config, actor) => {
      // The running agent does it (it can cut its own drain or gate short); with no agent, this command.
      const viaAgent = await rollbackViaAgent(config.dataDir, { target, actor }, say);
      if (viaAgent) return { ...viaAgent, by: 'agent' };
      return { ...(await c.rollback(target, actor, { progress: say, untilDone: true })), by: 'command' };
    });
  },
  human: (r: RollbackResult & { by: string }) =>
    `${r.note ? `${r.note}; ` : ''}rolled back from ${r.from ?? 'nothing'} to ${r.to} (${r.app}): serving after ` +
    `${(r.tookMs / 1000).toFixed(1)}s${r.cutShort ? ` (cut short: ${r.cutShort})` : ''}; holding ${r.to} until ` +
    '`tender resume` or a newer release from shore',
};

export const resumeCommand: Command = {
  path: ['resume'],
  summary: 'release the crew hold: follow the shore target again',
  options: CONFIG_OPTION,
  async run(ctx) {
    return withController(ctx, async (c, _store, _config, actor) => c.resume(actor));
  },
  human: () => 'following the shore target again',
};

export const applyCommand: Command = {
  path: ['apply'],
  args: '[APP]',
  summary: "switch to the pending shore release now, outside its maintenance window (the crew's decision)",
  options: CONFIG_OPTION,
  async run(ctx) {
    const app = ctx.positionals[0];
    return withController(ctx, (c, _store, _config, actor) => c.apply(app, actor));
  },
  human: (r: { app: string; version: string; switched: boolean }) =>
    r.switched
      ? `${r.app}@${r.version} is live`
      : `${r.app}@${r.version} is not on board yet: the agent switches to it as soon as its download ends`,
};

export const linkCommand: Command = {
  path: ['link'],
  args: 'cheap|metered',
  summary: 'mark the link cheap (downloads may run when downloadOnlyWhenCheap is set) or metered again',
  options: CONFIG_OPTION,
  async run(ctx) {
    const mode = ctx.positionals[0];
    if (mode !== 'cheap' && mode !== 'metered')
      throw new UsageError('say `tender link cheap` or `tender link metered`');
    const actor = localActor(ctx.env);
    const config = crewConfig(ctx);
    const store = openStateStore(vesselPaths(config.dataDir), { outboxCapBytes: config.telemetry.outboxCapBytes });
    try {
      store.set('link.cheap', mode === 'cheap');
      store.event('link.marked', { cheap: mode === 'cheap', by: actor });
    } finally {
      store.close();
    }
    return { cheap: mode === 'cheap' };
  },
  human: (r: { cheap: boolean }) => (r.cheap ? 'link marked cheap: release downloads may run' : 'link marked metered'),
};

export const CREW_COMMANDS = [routerRun, releasesCommand, rollbackCommand, resumeCommand, applyCommand, linkCommand];
