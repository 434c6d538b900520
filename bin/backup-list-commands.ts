import { stringOpt, type Command, type CommandContext } from '../shared/cli.js';
import { HUB_OPTIONS } from '../shared/ops-client.js';
import { backupList, policyList } from '../agent/backup/commands.js';
import { humanPolicies, humanShoreBackups, shoreBackupList, shorePolicyList } from '../publisher/backup-shore.js';

/**
 * `tender policy list` and `tender backup list` are one command on two sides, as `tender logs` is: on board
 * they read the vessel's own state (no hub needed); ashore they ask the hub: `backup list --vessel NAME`,
 * and `policy list` when a hub is named (--hub or TENDER_HUB) and no agent config is.
 */
const shore = new WeakSet<object>();
const mark = <T extends object>(r: T): T => {
  shore.add(r);
  return r;
};

function policiesAshore(ctx: CommandContext): boolean {
  if (stringOpt(ctx, 'config') !== undefined) return false;
  return stringOpt(ctx, 'hub') !== undefined || Boolean(ctx.env.TENDER_HUB);
}

export const policyListCommand: Command = {
  ...policyList,
  summary: `${policyList.summary}; with --hub (or TENDER_HUB) the policies in force on the hub`,
  options: { ...policyList.options, ...HUB_OPTIONS },
  async run(ctx) {
    return policiesAshore(ctx) ? mark(await shorePolicyList(ctx)) : policyList.run(ctx);
  },
  human: (r: object) =>
    shore.has(r) ? humanPolicies(r as Parameters<typeof humanPolicies>[0]) : policyList.human!(r as never),
};

export const backupListCommand: Command = {
  ...backupList,
  summary: `${backupList.summary}; with --vessel NAME the backups of that vessel ashore, from the hub`,
  options: {
    ...backupList.options,
    vessel: { type: 'string', description: 'list this vessel’s backups ashore, from the hub' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    const vessel = stringOpt(ctx, 'vessel');
    return vessel ? mark(await shoreBackupList(ctx, vessel, stringOpt(ctx, 'policy'))) : backupList.run(ctx);
  },
  human: (r: object) =>
    shore.has(r) ? humanShoreBackups(r as Parameters<typeof humanShoreBackups>[0]) : backupList.human!(r as never),
};
