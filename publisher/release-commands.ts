import { stringOpt, positional, requiredOpt, table, type Command } from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { createDockerEngine } from '../shared/docker.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../shared/ops-client.js';
import { MEDIA } from '../shared/protocol/http.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { buildManifest, defaultVersion } from './publish.js';
import { createChunkStore } from '../shared/content/chunk-store.js';
import { uploadMissingChunks } from './chunk-upload.js';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const releasePublish: Command = {
  path: ['release', 'publish'],
  summary: 'build a signed release from a compose file and local images, and upload it to the hub',
  options: {
    ...HUB_OPTIONS,
    compose: { type: 'string', description: 'the compose file (docker-compose subset with x-tender keys)' },
    key: { type: 'string', description: 'release signing key file (never leaves this machine)' },
    version: { type: 'string', description: 'release version', default: 'UTC build time, e.g. 20261126.231900' },
    sequence: { type: 'string', description: "release counter (default: the hub's next for this app)" },
    out: { type: 'string', description: 'also write the signed manifest to this file' },
    cache: {
      type: 'string',
      description: 'local chunk cache (makes re-publishing cheap)',
      default: '~/.cache/tender/chunks',
    },
  },
  async run(ctx) {
    const composeFile = requiredOpt(ctx, 'compose');
    const key = loadPrivateKey(requiredOpt(ctx, 'key'));
    const target = resolveHubTarget(ctx);
    const version = stringOpt(ctx, 'version') ?? defaultVersion();
    const docker = createDockerEngine();
    // Build once with a placeholder sequence to learn the app name, then ask the hub for the next number.
    const cache = createChunkStore(
      stringOpt(ctx, 'cache') ?? join(ctx.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tender', 'chunks'),
    );
    const tty = ctx.stderr.isTTY;
    // Reading and chunking images takes minutes on a cold cache: a line that updates on a TTY, and a plain
    // line every 64 MB in logs.
    let lastLine = 0;
    const draft = await buildManifest(composeFile, {
      version,
      sequence: 1,
      docker,
      chunkCache: cache,
      progress: (ref, n) => {
        if (tty) ctx.stderr.write(`\rreading ${ref}: ${(n / 1e6).toFixed(0)} MB`);
        else if (n - lastLine >= 64 * 2 ** 20) {
          lastLine = n;
          ctx.stderr.write(`reading ${ref}: ${(n / 1e6).toFixed(0)} MB\n`);
        }
      },
    });
    if (tty) ctx.stderr.write('\n');
    const seqText = stringOpt(ctx, 'sequence');
    if (seqText !== undefined && !/^\d{1,15}$/.test(seqText)) throw new UsageError('--sequence must be a whole number');
    const sequence = seqText
      ? Number(seqText)
      : (await opsCall(target, ROUTES.nextSequence, paths.nextSequence(draft.app))).sequence;
    const manifest = { ...draft, sequence };
    const upload = await uploadMissingChunks(target, manifest, cache, (done, total) => {
      const line = `uploading chunks: ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`;
      ctx.stderr.write(tty ? `\r${line}` : `${line}\n`);
    });
    if (tty && upload.missing > 0) ctx.stderr.write('\n');
    const bytes = envelopeBytes(signEnvelope('release', manifest, [key]));
    const out = stringOpt(ctx, 'out');
    if (out) writeFileAtomic(out, bytes, 0o644);
    const res = await opsCall(target, ROUTES.publishRelease, paths.releases(), undefined, {
      raw: bytes,
      contentType: MEDIA.envelope,
    });
    return {
      ...res,
      services: Object.keys(manifest.services),
      manifestBytes: bytes.byteLength,
      chunks: upload.chunks,
      chunksUploaded: upload.missing,
      uploadedBytes: upload.uploadedBytes,
    };
  },
  human: (r: {
    app: string;
    version: string;
    sequence: number;
    created: boolean;
    services: string[];
    chunks: number;
    chunksUploaded: number;
    uploadedBytes: number;
  }) =>
    `${r.created ? 'published' : 'already published'} ${r.app}@${r.version} (#${r.sequence}): ${r.services.join(', ')}; ${r.chunksUploaded} of ${r.chunks} chunks uploaded (${(r.uploadedBytes / 1e6).toFixed(2)} MB)`,
};

export const releaseList: Command = {
  path: ['release', 'list'],
  summary: 'releases published on the hub',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listReleases, paths.releases());
  },
  human: (r: {
    releases: { app: string; version: string; sequence: number; createdAt: number; publishedBy: string }[];
  }) =>
    table(
      ['APP', 'VERSION', 'SEQ', 'PUBLISHED', 'BY'],
      r.releases.map((x) => [
        x.app,
        x.version,
        String(x.sequence),
        new Date(x.createdAt).toISOString().slice(0, 16),
        x.publishedBy,
      ]),
    ),
};

export const rolloutStart: Command = {
  path: ['rollout', 'start'],
  args: 'RELEASE',
  summary: 'make RELEASE (VERSION or APP@VERSION) the desired release for all vessels, a group or one vessel',
  options: {
    ...HUB_OPTIONS,
    target: { type: 'string', description: 'all, group:NAME or vessel:NAME' },
    waves: { type: 'string', description: 'percentages per wave, e.g. 5,25,100 (not yet implemented)' },
    'max-failures': { type: 'string', description: 'halt past this failure share, e.g. 10% (not yet implemented)' },
  },
  async run(ctx) {
    const release = positional(ctx, 0, 'RELEASE');
    if (stringOpt(ctx, 'waves') !== undefined || stringOpt(ctx, 'max-failures') !== undefined) {
      throw new UsageError('--waves and --max-failures are not implemented yet; start the rollout without them');
    }
    return opsCall(resolveHubTarget(ctx), ROUTES.startRollout, paths.rollouts(), {
      release,
      target: requiredOpt(ctx, 'target'),
    });
  },
  human: (r: { id: number; release: { app: string; version: string }; vessels: string[] }) =>
    `rollout ${r.id}: ${r.release.app}@${r.release.version} targeted at ${r.vessels.length} vessel(s): ${r.vessels.join(', ')}`,
};

export const rolloutList: Command = {
  path: ['rollout', 'list'],
  summary: 'rollouts, newest first',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listRollouts, paths.rollouts());
  },
  human: (r: {
    rollouts: { id: number; releaseId: number; target: string; state: string; vessels: number; createdAt: number }[];
  }) =>
    table(
      ['ID', 'RELEASE', 'TARGET', 'STATE', 'VESSELS', 'STARTED'],
      r.rollouts.map((x) => [
        String(x.id),
        String(x.releaseId),
        x.target,
        x.state,
        String(x.vessels),
        new Date(x.createdAt).toISOString().slice(0, 16),
      ]),
    ),
};

export const RELEASE_COMMANDS = [releasePublish, releaseList, rolloutStart, rolloutList];
