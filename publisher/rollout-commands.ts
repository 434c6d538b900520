import {
  listOpt,
  positional,
  requiredOpt,
  stringOpt,
  table,
  type Command,
  type CommandContext,
} from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../shared/ops-client.js';
import { ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS } from '../shared/protocol/rollback-directive.js';
import type { RolloutShow, RolloutStartRequest, RolloutView } from '../shared/protocol/rollout-bodies.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';

/**
 * Rollouts and maintenance windows from the ops machine (DESIGN.md `## Rollouts in waves`): start one in
 * waves, pause, resume, abort, list, show per wave and per vessel; `--rollback --key KEYFILE` signs the
 * rollback directive here, with a release key that never leaves this machine (the hub cannot make one).
 * Ranges are checked by the hub, which answers in one line naming the flag.
 */

/** "99.5%" or "99.5" → 99.5; anything else names the flag. */
function percentOpt(ctx: CommandContext, name: string): number | undefined {
  const v = stringOpt(ctx, name);
  if (v === undefined) return undefined;
  const m = /^(-?\d{1,4}(?:\.\d{1,3})?)%?$/.exec(v.trim());
  if (!m) throw new UsageError(`--${name} must be a percentage such as 99.5%, got ${JSON.stringify(v)}`);
  return Number(m[1]);
}

/** "72h", "30m", "7d", "90s" → seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} must be a duration such as 72h, 30m or 7d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function wavesOpt(ctx: CommandContext): number[] | undefined {
  const v = stringOpt(ctx, 'waves');
  if (v === undefined) return undefined;
  return v.split(',').map((p) => {
    const m = /^(\d{1,3}(?:\.\d{1,3})?)%?$/.exec(p.trim());
    if (!m) throw new UsageError(`--waves must be percentages such as 5,25,100, got ${JSON.stringify(v)}`);
    return Number(m[1]);
  });
}

const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function directiveTargets(target: string): { all?: boolean; vessels?: string[]; groups?: string[] } {
  if (target === 'all') return { all: true };
  if (target.startsWith('vessel:')) return { vessels: [target.slice(7)] };
  if (target.startsWith('group:')) return { groups: [target.slice(6)] };
  throw new UsageError(`--target must be all, group:NAME or vessel:NAME, got ${JSON.stringify(target)}`);
}

export const rolloutStart: Command = {
  path: ['rollout', 'start'],
  args: 'RELEASE',
  summary: 'roll RELEASE (VERSION or APP@VERSION) out in waves to all vessels, a group or one vessel',
  options: {
    ...HUB_OPTIONS,
    target: { type: 'string', description: 'all, group:NAME or vessel:NAME' },
    waves: { type: 'string', description: 'cumulative percentages per wave, e.g. 5,25,100', default: '100' },
    canary: {
      type: 'string',
      multiple: true,
      description: 'vessel:NAME or group:G to go first (repeat, or comma-separated)',
    },
    'min-success': { type: 'string', description: 'a wave passes with at least this share healthy, e.g. 99.5%' },
    'max-failures': { type: 'string', description: 'a wave passes with at most this share failed, e.g. 2%' },
    'min-done': { type: 'string', description: 'at least this many vessels of a wave finished', default: '1' },
    'wave-quorum': { type: 'string', description: 'a wave is done once this share finished, e.g. 80%' },
    'wave-deadline': { type: 'string', description: "after this a wave's unfinished vessels fail, e.g. 72h" },
    rollback: { type: 'boolean', description: 'back to a release vessels already ran: signs a rollback directive' },
    key: { type: 'string', description: 'with --rollback: release signing key file (never leaves this machine)' },
    expires: { type: 'string', description: 'with --rollback: how long the directive holds', default: '7d' },
    reason: { type: 'string', description: 'with --rollback: why, signed into the directive' },
  },
  async run(ctx) {
    const release = positional(ctx, 0, 'RELEASE');
    const target = requiredOpt(ctx, 'target');
    const hub = resolveHubTarget(ctx);
    const minDone = stringOpt(ctx, 'min-done');
    if (minDone !== undefined && !/^\d{1,7}$/.test(minDone))
      throw new UsageError(`--min-done must be a whole number, got ${JSON.stringify(minDone)}`);
    const deadline = stringOpt(ctx, 'wave-deadline');
    const body: RolloutStartRequest = {
      release,
      target,
      waves: wavesOpt(ctx),
      canary: listOpt(ctx, 'canary').flatMap((c) => c.split(',').map((x) => x.trim())),
      minSuccessPercent: percentOpt(ctx, 'min-success'),
      maxFailuresPercent: percentOpt(ctx, 'max-failures'),
      minDone: minDone === undefined ? undefined : Number(minDone),
      waveQuorumPercent: percentOpt(ctx, 'wave-quorum'),
      waveDeadlineSeconds: deadline === undefined ? undefined : parseDuration(deadline, '--wave-deadline'),
    };
    if (ctx.values.rollback === true) {
      const key = loadPrivateKey(requiredOpt(ctx, 'key'));
      const draft = await opsCall(hub, ROUTES.rollbackDraft, paths.rollbackDraft(release));
      const lifetimeMs = parseDuration(stringOpt(ctx, 'expires') ?? '7d', '--expires') * 1000;
      if (lifetimeMs > ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS)
        throw new UsageError(`--expires must be at most ${ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS / 86_400_000}d`);
      const now = Date.now();
      const reason = stringOpt(ctx, 'reason');
      const payload = {
        _type: 'rollback',
        app: draft.app,
        version: draft.version,
        digest: draft.digest,
        sequence: draft.sequence,
        targets: directiveTargets(target),
        issuedAt: isoSeconds(now),
        expires: isoSeconds(now + lifetimeMs),
        counter: draft.counter,
        ...(reason && { reason }),
      };
      body.rollback = { directive: envelopeBytes(signEnvelope('rollback', payload, [key])).toString('base64') };
    } else if (stringOpt(ctx, 'key') !== undefined) throw new UsageError('--key goes with --rollback');
    return opsCall(hub, ROUTES.startRollout, paths.rollouts(), body);
  },
  human: (r: { id: number; release: { app: string; version: string }; vessels: string[]; waves: string[][] }) =>
    `rollout ${r.id}: ${r.release.app}@${r.release.version} to ${r.vessels.length} vessel(s) in ` +
    `${r.waves.length} wave(s); wave 1: ${r.waves[0]?.join(', ') || 'none'}`,
};

const idArg = (ctx: CommandContext): number => {
  const v = positional(ctx, 0, 'ID');
  if (!/^\d{1,12}$/.test(v) || Number(v) < 1)
    throw new UsageError(`ID must be a rollout number, got ${JSON.stringify(v)}`);
  return Number(v);
};

function verb(name: 'pause' | 'resume' | 'abort', summary: string): Command {
  return {
    path: ['rollout', name],
    args: 'ID',
    summary,
    options: HUB_OPTIONS,
    async run(ctx) {
      const id = idArg(ctx);
      return opsCall(resolveHubTarget(ctx), ROUTES[`${name}Rollout`], paths.rolloutAction(id, name), {});
    },
    human: (r: RolloutView) => `rollout ${r.id}: ${r.state}${r.reason ? ` (${r.reason})` : ''}`,
  };
}

export const rolloutPause = verb('pause', 'pause a rollout: no further wave starts');
export const rolloutResume = verb('resume', 'resume a paused rollout');
export const rolloutAbort = verb('abort', 'abort a rollout: vessels not yet started keep their release');

export const rolloutList: Command = {
  path: ['rollout', 'list'],
  summary: 'rollouts, newest first',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listRollouts, paths.rollouts());
  },
  human: (r: { rollouts: RolloutView[] }) =>
    table(
      ['ID', 'RELEASE', 'KIND', 'TARGET', 'STATE', 'WAVE', 'VESSELS', 'STARTED'],
      r.rollouts.map((x) => [
        String(x.id),
        `${x.app}@${x.version}`,
        x.kind,
        x.target,
        x.state,
        `${x.currentWave + 1}/${x.rules.waves.length}`,
        String(x.vessels),
        new Date(x.createdAt).toISOString().slice(0, 16),
      ]),
    ),
};

function rulesText(r: RolloutView): string {
  const t = r.rules.threshold;
  return [
    `waves ${r.rules.waves.map((w) => `${w}%`).join(',')}`,
    t.kind === 'min-success' ? `at least ${t.percent}% healthy` : `at most ${t.percent}% failed`,
    `min done ${r.rules.minDone}`,
    `quorum ${r.rules.quorumPercent}%`,
    r.rules.deadlineMs === null ? 'no deadline' : `deadline ${Math.round(r.rules.deadlineMs / 3_600_000)}h`,
  ].join('; ');
}

function outcomeText(v: RolloutShow['waves'][number]['vessels'][number]): string {
  if (v.startedAt === null) return 'not started (keeps its release)';
  const parts: string[] = [v.outcome];
  if (v.failure) parts.push(`(${v.failure})`);
  if (v.outcome === 'downloading' && v.progress && v.progress.total > 0)
    parts.push(`${Math.floor((v.progress.done * 100) / v.progress.total)}%`);
  if (v.until) parts.push(`until ${v.until}`);
  if (v.reason) parts.push(`— ${v.reason}`);
  if (v.supersededBy !== null) parts.push(`[superseded by rollout ${v.supersededBy}]`);
  return parts.join(' ');
}

/** `tender rollout show` as people read it: the plan, then each wave with its counts and its vessels. */
export function renderRollout(s: RolloutShow): string {
  const r = s.rollout;
  const lines = [
    `rollout ${r.id}: ${r.app}@${r.version}${r.kind === 'rollback' ? ' (rollback)' : ''} to ${r.target} — ${r.state}`,
    `  ${rulesText(r)}; started ${new Date(r.createdAt).toISOString().slice(0, 19)}Z by ${r.createdBy}`,
  ];
  if (r.reason) lines.push(`  reason: ${r.reason}`);
  for (const w of s.waves) {
    const c = w.counts;
    const head = `wave ${w.wave + 1} (${w.percent}%${w.wave === 0 ? ', canary' : ''})`;
    lines.push(
      `${head}: ${w.started ? 'started' : 'not started'}; ` +
        `${c.succeeded} healthy, ${c.failed} failed, ${c.held} held, ${c.unfinished} unfinished of ${c.total}`,
    );
    const width = Math.max(6, ...w.vessels.map((v) => v.vessel.length));
    for (const v of w.vessels) lines.push(`  ${v.vessel.padEnd(width)}  ${outcomeText(v)}`);
  }
  return lines.join('\n');
}

export const rolloutShow: Command = {
  path: ['rollout', 'show'],
  args: 'ID',
  summary: "a rollout per wave and per vessel, with each vessel's outcome and its reason",
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.getRollout, paths.rollout(idArg(ctx)));
  },
  human: renderRollout,
};

export const windowSet: Command = {
  path: ['window', 'set'],
  args: 'vessel:NAME|group:G SPEC',
  summary: 'set the maintenance window of a vessel or group, e.g. "Mon-Thu 02:00-04:00 UTC"',
  details:
    'SPEC: ranges separated by ";", each [days] HH:MM-HH:MM (days: daily, Mon, Mon-Thu, Sat,Sun), then a time ' +
    'zone (UTC or a name such as Europe/Oslo). A range whose end is not after its start crosses midnight.',
  options: HUB_OPTIONS,
  async run(ctx) {
    const scope = positional(ctx, 0, 'vessel:NAME or group:G');
    const spec = positional(ctx, 1, 'SPEC');
    return opsCall(resolveHubTarget(ctx), ROUTES.setWindow, paths.windows(), { scope, spec });
  },
  human: (r: { scope: string; spec: string }) => `window of ${r.scope}: ${r.spec}`,
};

export const windowList: Command = {
  path: ['window', 'list'],
  summary: 'maintenance windows per vessel or group',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listWindows, paths.windows());
  },
  human: (r: { windows: { scope: string; spec: string; setAt: number; setBy: string }[] }) =>
    table(
      ['SCOPE', 'WINDOW', 'SET', 'BY'],
      r.windows.map((w) => [w.scope, w.spec, new Date(w.setAt).toISOString().slice(0, 16), w.setBy]),
    ),
};

export const windowClear: Command = {
  path: ['window', 'clear'],
  args: 'vessel:NAME|group:G',
  summary: 'clear the maintenance window of a vessel or group (it may switch any time, or by its group)',
  options: HUB_OPTIONS,
  async run(ctx) {
    const scope = positional(ctx, 0, 'vessel:NAME or group:G');
    return opsCall(resolveHubTarget(ctx), ROUTES.clearWindow, paths.windowClear(), { scope });
  },
  human: (r: { scope: string; cleared: boolean }) =>
    r.cleared ? `window of ${r.scope} cleared` : `${r.scope} had no window`,
};

export const settingsSet: Command = {
  path: ['settings', 'set'],
  args: 'vessel:NAME|group:G',
  summary: "set a vessel's or group's download settings (on board they win over agent.json's)",
  options: {
    ...HUB_OPTIONS,
    'download-window': {
      type: 'string',
      multiple: true,
      description: 'when downloads may run, window syntax (repeat for several)',
    },
    'release-bytes-per-second': { type: 'string', description: 'download cap in bytes per second (0: none)' },
    'download-only-when-cheap': { type: 'string', description: 'true or false' },
  },
  async run(ctx) {
    const scope = positional(ctx, 0, 'vessel:NAME or group:G');
    const settings: Record<string, unknown> = {};
    const windows = listOpt(ctx, 'download-window');
    if (windows.length > 0) settings.downloadWindows = windows;
    const bps = stringOpt(ctx, 'release-bytes-per-second');
    if (bps !== undefined) {
      if (!/^\d{1,15}$/.test(bps))
        throw new UsageError(`--release-bytes-per-second must be a whole number, got ${JSON.stringify(bps)}`);
      settings.releaseBytesPerSecond = Number(bps);
    }
    const cheap = stringOpt(ctx, 'download-only-when-cheap');
    if (cheap !== undefined) {
      if (cheap !== 'true' && cheap !== 'false')
        throw new UsageError(`--download-only-when-cheap must be true or false, got ${JSON.stringify(cheap)}`);
      settings.downloadOnlyWhenCheap = cheap === 'true';
    }
    if (Object.keys(settings).length === 0) throw new UsageError('give at least one setting');
    return opsCall(resolveHubTarget(ctx), ROUTES.setSettings, paths.settings(), { scope, settings });
  },
  human: (r: { scope: string; settings: Record<string, unknown> }) =>
    `settings of ${r.scope}: ${JSON.stringify(r.settings)}`,
};

export const settingsList: Command = {
  path: ['settings', 'list'],
  summary: 'download settings the hub sets per vessel or group',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listSettings, paths.settings());
  },
  human: (r: { settings: { scope: string; settings: Record<string, unknown>; setBy: string }[] }) =>
    table(
      ['SCOPE', 'SETTINGS', 'BY'],
      r.settings.map((x) => [x.scope, JSON.stringify(x.settings), x.setBy]),
    ),
};

export const settingsClear: Command = {
  path: ['settings', 'clear'],
  args: 'vessel:NAME|group:G',
  summary: "clear a vessel's or group's download settings (agent.json's apply again)",
  options: HUB_OPTIONS,
  async run(ctx) {
    const scope = positional(ctx, 0, 'vessel:NAME or group:G');
    return opsCall(resolveHubTarget(ctx), ROUTES.clearSettings, paths.settingsClear(), { scope });
  },
  human: (r: { scope: string; cleared: boolean }) =>
    r.cleared ? `settings of ${r.scope} cleared` : `${r.scope} had no settings`,
};

export const ROLLOUT_COMMANDS = [
  settingsSet,
  settingsList,
  settingsClear,
  rolloutStart,
  rolloutPause,
  rolloutResume,
  rolloutAbort,
  rolloutList,
  rolloutShow,
  windowSet,
  windowList,
  windowClear,
];
