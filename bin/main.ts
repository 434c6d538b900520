import { Cli } from '../shared/cli.js';
import { keysInit, keysRevoke, keysRotate } from '../publisher/keys-commands.js';
import { releaseVerify } from '../publisher/verify-command.js';
import { HUB_COMMANDS } from '../hub/commands/hub-commands.js';
import { TOKEN_COMMANDS } from '../hub/commands/token-commands.js';
import { RELEASE_COMMANDS } from '../publisher/release-commands.js';
import { ROLLOUT_COMMANDS } from '../publisher/rollout-commands.js';
import { AGENT_COMMANDS } from '../agent/commands.js';
import { CREW_COMMANDS } from '../agent/crew/crew-commands.js';
import { logsCommand } from './logs-command.js';
import { AGENT_VERSION } from '../agent/version.js';
import { installCommand } from '../installer/install-command.js';
import { POLICY_COMMANDS } from '../publisher/policy-commands.js';
import { TLS_COMMANDS } from '../publisher/tls-commands.js';
import { BACKUP_COMMANDS, backupList, policyList } from '../agent/backup/commands.js';
import { backupListCommand, policyListCommand } from './backup-list-commands.js';
import { bundleExport } from '../publisher/bundle-export.js';
import { bundleImport } from '../agent/crew/bundle-command.js';
import { agentPublish } from '../publisher/agent-publish.js';

/** Every `tender` command, registered in one place; nothing runs until main() is called. */
export function buildCli(): Cli {
  return new Cli('tender', AGENT_VERSION).add(
    keysInit,
    keysRotate,
    keysRevoke,
    releaseVerify,
    ...RELEASE_COMMANDS,
    ...ROLLOUT_COMMANDS,
    ...HUB_COMMANDS,
    ...TOKEN_COMMANDS,
    ...AGENT_COMMANDS,
    ...CREW_COMMANDS,
    logsCommand,
    installCommand,
    ...POLICY_COMMANDS,
    ...TLS_COMMANDS,
    // policy list and backup list answer on board, or ashore from the hub (backup-list-commands.ts).
    ...BACKUP_COMMANDS.filter((c) => c !== policyList && c !== backupList),
    policyListCommand,
    backupListCommand,
    bundleExport,
    bundleImport,
    agentPublish,
  );
}

export async function main(argv: string[]): Promise<number> {
  return buildCli().run(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env });
}
