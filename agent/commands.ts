import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { DEFAULT_CONFIG_PATH, DEFAULT_CONSOLE_LISTEN, DEFAULT_DATA_DIR, loadAgentConfig } from './config.js';
import { selfPaths } from './self-update/layout.js';
import { preflight, type PreflightResult } from './self-update/preflight.js';
import { generatePassword, hashPassword } from './crew/password.js';
import { enrolFromFile, enrolOnline, readEnrolmentFile } from './enrol.js';
import { runAgent } from './run.js';
import { buildStatus, formatStatus, type StatusView } from './status.js';
import { configPathOf, crewConfig } from './crew/crew-commands.js';
import { actAsDataOwner } from './data-owner.js';

const CONFIG_OPTION = {
  config: { type: 'string' as const, description: 'agent config file', default: DEFAULT_CONFIG_PATH },
};

export const agentEnroll: Command = {
  path: ['agent', 'enroll'],
  summary: 'enrol this vessel: make its key pair, register it with the hub, write the config and the trusted root',
  options: {
    ...CONFIG_OPTION,
    hub: { type: 'string', description: 'hub URL (online enrolment)' },
    token: { type: 'string', description: 'one-time enrolment token from `tender vessel add`' },
    file: {
      type: 'string',
      description: 'offline enrolment file from `tender vessel add --offline-file` (no link needed)',
    },
    data: { type: 'string', description: 'state directory (database, chunks, keys)', default: DEFAULT_DATA_DIR },
    force: { type: 'boolean', description: 'enrol again even though a config exists (new key)' },
    'insecure-http': {
      type: 'boolean',
      description: 'accept a plain http:// hub whose token pins no certificate (the link in clear)',
    },
    'console-password': {
      type: 'string',
      description: 'password for the crew console (default: generated and printed once)',
    },
    'console-listen': { type: 'string', description: 'HOST:PORT of the crew console', default: DEFAULT_CONSOLE_LISTEN },
    'console-tls': {
      type: 'boolean',
      description: 'serve the crew console over HTTPS with a certificate the agent makes (see tender status)',
    },
  },
  async run(ctx) {
    const configPath = configPathOf(ctx);
    const dataDir = resolve(stringOpt(ctx, 'data') ?? DEFAULT_DATA_DIR);
    const file = stringOpt(ctx, 'file');
    const force = ctx.values.force === true;
    const insecureHttp = ctx.values['insecure-http'] === true;
    const given = stringOpt(ctx, 'console-password');
    const password = given ?? generatePassword();
    const consoleCfg = {
      listen: stringOpt(ctx, 'console-listen') ?? DEFAULT_CONSOLE_LISTEN,
      passwordHash: hashPassword(password),
      tls: ctx.values['console-tls'] === true,
    };
    const shown = given ? undefined : password;
    if (file && stringOpt(ctx, 'token')) throw new UsageError('pass either --file or --hub with --token, not both');
    // Read as the caller (the file is theirs, often 0600); then root enrolling after `apt install
    // ./tender_*.deb` writes the key and the config as the services' user.
    const enrolment = file ? readEnrolmentFile(file) : undefined;
    actAsDataOwner(dataDir);
    if (enrolment) {
      const c = enrolFromFile({ file: enrolment, configPath, dataDir, force, console: consoleCfg, insecureHttp });
      return {
        vessel: c.vesselName,
        hub: c.hub,
        config: configPath,
        dataDir,
        mode: 'offline',
        console: consoleCfg.listen,
        consolePassword: shown,
        note: 'enrolment completes on first contact with the hub',
      };
    }
    const c = await enrolOnline({
      hub: requiredOpt(ctx, 'hub'),
      token: requiredOpt(ctx, 'token'),
      configPath,
      dataDir,
      force,
      console: consoleCfg,
      insecureHttp,
    });
    return {
      vessel: c.vesselName,
      vesselId: c.vesselId,
      hub: c.hub,
      config: configPath,
      dataDir,
      mode: 'online',
      console: consoleCfg.listen,
      consolePassword: shown,
    };
  },
  human: (r: {
    vessel: string;
    config: string;
    mode: string;
    note?: string;
    console: string;
    consolePassword?: string;
  }) =>
    `enrolled as ${r.vessel} (${r.mode}); config written to ${r.config}${r.note ? `; ${r.note}` : ''}` +
    `\ncrew console: http://${r.console}/${r.consolePassword ? ` (password, shown once: ${r.consolePassword})` : ''}`,
};

// Under systemd's default 90 s stop timeout, with room to spare.
const AGENT_STOP_GRACE_MS = 20_000;

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
      // Every step is journaled, so a stop that overruns (a Docker call hanging) may end the process.
      setTimeout(() => {
        log.warn({ graceMs: AGENT_STOP_GRACE_MS }, 'stop took too long; exiting');
        process.exit(0);
      }, AGENT_STOP_GRACE_MS).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Root running the agent by hand (debugging a vessel) acts as the services' user, as crew commands do.
    crewConfig(ctx);
    const r = await runAgent({ configPath: configPathOf(ctx), log, signal: controller.signal });
    // Switched to a new executable (self-update): end now, whatever handle lingers; systemd starts
    // `current` again.
    if (r.restart) setTimeout(() => process.exit(0), 1_000);
    return undefined;
  },
};

export const agentPreflight: Command = {
  path: ['agent', 'preflight'],
  summary: "before each agent start (the unit's ExecStartPre): make self/current runnable; revert a failed self-update",
  options: CONFIG_OPTION,
  async run(ctx) {
    const config = loadAgentConfig(configPathOf(ctx));
    return preflight(selfPaths(config.dataDir), realpathSync(process.execPath));
  },
  human: (r: PreflightResult) => `${r.action}: ${r.current}${r.reason ? ` (${r.reason})` : ''}`,
};

export const vesselStatus: Command = {
  path: ['status'],
  summary: 'this vessel: current, previous and pending release, link state, backlog, last sync (no hub needed)',
  options: CONFIG_OPTION,
  async run(ctx): Promise<StatusView> {
    return buildStatus(crewConfig(ctx));
  },
  human: formatStatus,
};

export const AGENT_COMMANDS = [agentEnroll, agentRun, agentPreflight, vesselStatus];
