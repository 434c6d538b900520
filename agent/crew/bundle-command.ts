import { createReadStream, existsSync } from 'node:fs';
import { positional, type Command } from '../../shared/cli.js';
import { UsageError } from '../../shared/errors.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import { createDockerEngine } from '../../shared/docker.js';
import { createLogger } from '../../shared/log.js';
import { DEFAULT_CONFIG_PATH } from '../config.js';
import { loadTrustedRoot } from '../enrol.js';
import { importBundle, type BundleImportResult } from '../release/bundle-import.js';
import { withCarried } from '../release/carried.js';
import { UpdateInProgressError } from '../release/journal.js';
import type { Controller } from '../release/controller.js';
import type { StateStore } from '../state-store.js';
import type { AgentConfig } from '../config.js';
import { withController } from './crew-commands.js';

// How long an import waits for an update the running agent began (a gate, a drain) before answering.
const AGENT_UPDATE_WAIT_MS = 120_000;

export interface BundleApplied extends BundleImportResult {
  /** What became of it under the rules a release from the hub follows. */
  outcome: 'live' | 'pending' | 'held' | 'not applied';
  reason: string | null;
}

/**
 * Import a bundle and give it to the controller as it would a target from the hub: it goes live now if
 * nothing holds it back (a crew hold, a closed maintenance window); otherwise it waits, on board and
 * verified, and the agent applies it when the rules allow. Used by the CLI and by the console's upload.
 */
export async function importAndApply(
  c: Controller,
  store: StateStore,
  config: AgentConfig,
  input: NodeJS.ReadableStream | AsyncIterable<Buffer>,
  actor: string,
): Promise<BundleApplied> {
  const log = createLogger('crew', process.env.TENDER_LOG_LEVEL ?? 'warn');
  const result = await importBundle(
    {
      store,
      chunks: createChunkStore(`${config.dataDir}/chunks`),
      docker: createDockerEngine(),
      root: loadTrustedRoot(config.dataDir),
      dataDir: config.dataDir,
      log,
    },
    input as AsyncIterable<Buffer>,
    actor,
  );
  let reason: string | null = null;
  // The running agent sees the carried release too and may begin its update first: the journal then
  // refuses ours. Wait for that update to end (bounded), then reconcile again, so the answer is what became
  // of the release, not "pending" while the agent is half-way through applying it.
  const until = Date.now() + AGENT_UPDATE_WAIT_MS;
  for (;;) {
    try {
      await c.reconcile(withCarried(store.get('desired'), store.get('carried') ?? [], config.vesselName));
      break;
    } catch (err) {
      if (err instanceof UpdateInProgressError && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      reason = (err as Error).message;
      break;
    }
  }
  const live = c.releases.live();
  if (live?.version === result.version) return { ...result, outcome: 'live', reason: null };
  const hold = store.get('crew.hold');
  if (hold && result.sequence <= hold.sequence)
    return { ...result, outcome: 'held', reason: 'the crew holds an older release; `tender resume` to apply it' };
  const last = store.get('release.lastResult');
  if (!reason && last?.version === result.version && last.reason) reason = last.reason;
  return { ...result, outcome: store.get('release.pending') === result.version ? 'pending' : 'not applied', reason };
}

export const bundleImport: Command = {
  path: ['bundle', 'import'],
  args: 'FILE',
  summary: 'install a release carried aboard (USB stick): verified as a download, staged, then applied by the rules',
  options: { config: { type: 'string', description: 'agent config file', default: DEFAULT_CONFIG_PATH } },
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
    return withController(ctx, (c, store, config, actor) =>
      importAndApply(c, store, config, createReadStream(file, { highWaterMark: 1024 * 1024 }), actor),
    );
  },
  human: (r: BundleApplied) =>
    `${r.alreadyOnBoard ? 'already on board' : 'imported'} ${r.app}@${r.version} ` +
    `(#${r.sequence}, ${r.chunks} chunks, ${(r.bytes / 1e6).toFixed(1)} MB): ` +
    `${r.outcome}${r.reason ? ` (${r.reason})` : ''}`,
};
