import { stringOpt, requiredOpt, table, type Command } from '../shared/cli.js';
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
import { formatBytes, progressTo, transferLine } from '../shared/progress.js';
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
    // Reading and chunking images takes minutes on a cold cache: on a TTY one line that updates, with the
    // total (the engine's image size, which the saved tar about matches), rate and time left; in logs a
    // plain line every few seconds.
    const progress = progressTo(ctx.stderr);
    const sizes = new Map<string, number>();
    const started = new Map<string, number>();
    const draft = await buildManifest(composeFile, {
      version,
      sequence: 1,
      docker,
      chunkCache: cache,
      progress: (ref, n) => {
        if (!started.has(ref)) {
          started.set(ref, Date.now());
          void docker
            .imageInspect(ref)
            .then((i) => i && sizes.set(ref, i.size))
            .catch(() => undefined);
        }
        const total = sizes.get(ref);
        progress.update(
          total
            ? transferLine(`reading ${ref}`, n, Math.max(n, total), started.get(ref)!)
            : `reading ${ref}: ${formatBytes(n)}`,
        );
      },
    });
    progress.end();
    const seqText = stringOpt(ctx, 'sequence');
    if (seqText !== undefined && !/^\d{1,15}$/.test(seqText)) throw new UsageError('--sequence must be a whole number');
    const sequence = seqText
      ? Number(seqText)
      : (await opsCall(target, ROUTES.nextSequence, paths.nextSequence(draft.app))).sequence;
    const manifest = { ...draft, sequence };
    const uploadStart = Date.now();
    const upload = await uploadMissingChunks(target, manifest, cache, (done, total) =>
      progress.update(transferLine('uploading chunks', done, total, uploadStart)),
    );
    progress.end();
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
    `${r.created ? 'published' : 'already published'} ${r.app}@${r.version} (#${r.sequence}): ` +
    `${r.services.join(', ')}; ${r.chunksUploaded} of ${r.chunks} chunks uploaded ` +
    `(${(r.uploadedBytes / 1e6).toFixed(2)} MB)`,
};

export const releaseList: Command = {
  path: ['release', 'list'],
  summary: 'releases published on the hub',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listReleases, paths.releases());
  },
  human: (r: {
    releases: {
      app: string;
      version: string;
      sequence: number;
      createdAt: number;
      publishedBy: string;
      hostAccess?: string[];
    }[];
  }) =>
    table(
      ['APP', 'VERSION', 'SEQ', 'PUBLISHED', 'BY', 'HOST ACCESS'],
      r.releases.map((x) => [
        x.app,
        x.version,
        String(x.sequence),
        new Date(x.createdAt).toISOString().slice(0, 16),
        x.publishedBy,
        // What the release may touch on the host; "?" when the hub could not read it again.
        x.hostAccess === undefined ? '?' : x.hostAccess.join('; ') || 'none',
      ]),
    ),
};

export const RELEASE_COMMANDS = [releasePublish, releaseList];
