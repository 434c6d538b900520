import { existsSync, readFileSync } from 'node:fs';
import { stringOpt, type Command, type CommandContext } from '../shared/cli.js';
import { UsageError, errorMessage } from '../shared/errors.js';
import { verifyInitialRoot } from '../shared/trust/root.js';
import { parseEnrolmentToken } from '../shared/protocol/enrolment-token.js';
import { readEnrolmentFile } from '../agent/enrol.js';
import { DEFAULT_HUB_LISTEN } from '../hub/commands/hub-commands.js';
import { InstallStepError, readHostFacts, runStep, type StepOutput } from './host.js';
import { PATHS, planInstall, requireRoot, type HostFacts, type InstallRequest } from './install-plan.js';
import { UNIT_NAMES, unitText, type UnitName } from './unit-files.js';

interface InstallResult {
  action: InstallRequest['kind'];
  vessel?: string;
  changes: string[];
  notes: string[];
  consoleListen?: string;
  consolePassword?: string;
  adminToken?: string;
  next: string[];
}

function vesselRequest(ctx: CommandContext, notes: string[]): InstallRequest {
  const file = stringOpt(ctx, 'file');
  const token = stringOpt(ctx, 'token');
  const hub = stringOpt(ctx, 'hub');
  const console = { listen: stringOpt(ctx, 'console-listen'), password: stringOpt(ctx, 'console-password') };
  const start = ctx.values['no-start'] !== true;
  const insecureHttp = ctx.values['insecure-http'] === true ? { insecureHttp: true } : {};
  if (file && (token || hub))
    throw new UsageError('pass either --file FILE or --hub URL --token T, not both (the file names its hub)');
  if (file) {
    if (!existsSync(file)) throw new UsageError(`--file ${file}: no such file`);
    const f = readEnrolmentFile(file);
    if (Date.parse(f.expiresAt) < Date.now())
      notes.push(`the enrolment file expired at ${f.expiresAt} (by this clock): the hub will refuse it`);
    return { kind: 'vessel', enrol: { mode: 'offline', file, vessel: f.vessel, ...insecureHttp }, console, start };
  }
  if (token || hub) {
    if (!token || !hub) throw new UsageError('online enrolment needs both --hub URL and --token T');
    if (!URL.canParse(hub)) throw new UsageError(`--hub must be a URL, got ${JSON.stringify(hub)}`);
    if (!parseEnrolmentToken(token))
      throw new UsageError('--token is malformed (expected tne_<secret>.<version>.<digest>, from tender vessel add)');
    return { kind: 'vessel', enrol: { mode: 'online', hub, token, ...insecureHttp }, console, start };
  }
  return { kind: 'vessel', console, start };
}

function currentHubListen(): string | undefined {
  try {
    return /^TENDER_HUB_LISTEN=(.+)$/m.exec(readFileSync(PATHS.hubEnv, 'utf8'))?.[1]?.trim();
  } catch {
    return undefined;
  }
}

function hubRequest(ctx: CommandContext): InstallRequest {
  const rootFile = stringOpt(ctx, 'root');
  let root: string | undefined;
  if (rootFile) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(rootFile);
    } catch (err) {
      throw new UsageError(
        `cannot read --root ${rootFile}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
      );
    }
    try {
      verifyInitialRoot(bytes);
    } catch (err) {
      throw new UsageError(`--root ${rootFile} is not a valid root document: ${errorMessage(err)}`);
    }
    let current: Buffer | undefined;
    try {
      current = readFileSync(PATHS.hubRoot);
    } catch {
      /* first install */
    }
    if (!current?.equals(bytes)) root = rootFile;
  }
  let listen = stringOpt(ctx, 'listen');
  if (listen !== undefined && !/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(listen))
    throw new UsageError(`--listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
  if (listen !== undefined && listen === currentHubListen()) listen = undefined;
  return { kind: 'hub', root, listen, start: ctx.values['no-start'] !== true };
}

function requestOf(ctx: CommandContext, notes: string[]): InstallRequest {
  const uninstall = ctx.values.uninstall === true;
  const hubServer = ctx.values['hub-server'] === true;
  if (ctx.values.purge === true && !uninstall) throw new UsageError('--purge goes with --uninstall');
  if (uninstall && hubServer) throw new UsageError('--uninstall removes everything Tender installed; no --hub-server');
  if (uninstall) return { kind: 'uninstall', purge: ctx.values.purge === true };
  if (hubServer) {
    for (const o of ['file', 'token', 'hub', 'console-listen', 'console-password'])
      if (ctx.values[o] !== undefined) throw new UsageError(`--${o} is for a vessel, not with --hub-server`);
    return hubRequest(ctx);
  }
  for (const o of ['root', 'listen'])
    if (ctx.values[o] !== undefined) throw new UsageError(`--${o} goes with --hub-server`);
  return vesselRequest(ctx, notes);
}

function nextSteps(req: InstallRequest, facts: HostFacts): string[] {
  if (req.kind === 'uninstall')
    return req.purge ? [] : [`kept ${PATHS.etc} and ${PATHS.data} (enrolment and state); --purge removes them`];
  if (req.kind === 'hub') {
    const listen = req.listen ?? currentHubListen() ?? DEFAULT_HUB_LISTEN;
    return [
      `check it: curl http://${listen}/ready (settings: ${PATHS.hubEnv})`,
      `ops: tender vessel list --hub http://${listen} --token TOKEN`,
      'logs: journalctl -u tender-hub',
    ];
  }
  const next = ['check it: tender status', 'logs: journalctl -u tender-agent -u tender-router'];
  if (!facts.packaged)
    next.push(
      'crew without sudo: group tender runs tender status; tender rollback needs group docker too ' +
        '(usermod -aG tender,docker NAME)',
    );
  if (!req.start) next.push('start it: systemctl start tender-router tender-agent');
  return next;
}

async function install(ctx: CommandContext): Promise<InstallResult> {
  const notes: string[] = [];
  requireRoot(process.getuid?.() === 0);
  const req = requestOf(ctx, notes);
  const facts = readHostFacts();
  const texts = Object.fromEntries(UNIT_NAMES.map((u) => [u, unitText(u)])) as Record<UnitName, string>;
  const steps = planInstall(facts, req, texts);
  if (req.kind === 'vessel' && facts.enrolled && req.enrol)
    notes.push(
      `already enrolled as ${facts.enrolled.vessel}: enrolment left as it is (re-enrol: tender agent enroll --force)`,
    );
  if (facts.packaged && req.kind !== 'uninstall')
    notes.push('the tender package owns the executable and the units: upgrade them with apt install ./tender_*.deb');
  const out: StepOutput = {};
  const done: string[] = [];
  for (const step of steps) {
    try {
      await runStep(step, out);
    } catch (err) {
      throw new InstallStepError(
        `tender install stopped at "${step.say}": ${errorMessage(err)}` +
          `\ndone before it: ${done.length ? done.join('; ') : 'nothing'}; run it again once fixed`,
      );
    }
    done.push(step.say);
  }
  return {
    action: req.kind,
    vessel: out.vessel ?? facts.enrolled?.vessel,
    changes: done,
    notes,
    consoleListen: out.consoleListen,
    consolePassword: out.consolePassword,
    adminToken: out.adminToken,
    next: nextSteps(req, facts),
  };
}

function human(r: InstallResult): string {
  const what =
    r.action === 'uninstall'
      ? 'Tender removed'
      : r.action === 'hub'
        ? 'Tender hub installed'
        : `Tender installed for vessel ${r.vessel ?? '?'}`;
  const lines = [r.changes.length ? `${what}:` : `${what}; nothing needed changing.`];
  lines.push(...r.changes.map((c) => `  ${c}`));
  lines.push(...r.notes.map((n) => `note: ${n}`));
  if (r.consoleListen) {
    const password = r.consolePassword ? ` (password, shown once: ${r.consolePassword})` : '';
    lines.push(`crew console: http://${r.consoleListen}/${password}`);
  }
  if (r.adminToken) lines.push(`admin token (shown once): ${r.adminToken}`);
  lines.push(...r.next);
  return lines.join('\n');
}

export const installCommand: Command = {
  path: ['install'],
  summary: 'install this executable as the vessel services (or the shore hub), enrol, start; again to upgrade',
  options: {
    file: {
      type: 'string',
      description: 'offline enrolment file from `tender vessel add --offline-file` (no link needed)',
    },
    hub: { type: 'string', description: 'hub URL (online enrolment, with --token)' },
    token: { type: 'string', description: 'one-time enrolment token from `tender vessel add`' },
    'insecure-http': {
      type: 'boolean',
      description: 'accept a plain http:// hub (everything on the link in clear); only for a hub without TLS',
    },
    'console-listen': { type: 'string', description: 'HOST:PORT of the crew console', default: '127.0.0.1:8421' },
    'console-password': { type: 'string', description: 'crew console password (default: generated, shown once)' },
    'hub-server': { type: 'boolean', description: 'install the shore hub (tender-hub.service) instead' },
    root: { type: 'string', description: 'with --hub-server: the signed root document the hub trusts' },
    listen: {
      type: 'string',
      description: 'with --hub-server: HOST:PORT the hub listens on',
      default: '127.0.0.1:8420',
    },
    'no-start': { type: 'boolean', description: 'install and enable, but start nothing' },
    uninstall: { type: 'boolean', description: 'stop and remove the services, the executable and the tender user' },
    purge: {
      type: 'boolean',
      description: "with --uninstall: also remove /etc/tender, the state and the vessel's containers",
    },
  },
  details: [
    `Installs ${PATHS.executable}, the units in ${PATHS.unitDir}, the system user tender (in group docker),`,
    `${PATHS.etc} and ${PATHS.data}; starts tender-router, then tender-agent. Run as root. Running it again`,
    'upgrades the executable and the units in place, leaves enrolment and state alone, and restarts the router',
    'only if its unit changed. installer/install.sh does the same from the file beside it.',
  ].join('\n'),
  run: install,
  human,
};
