import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { TenderError, UsageError } from '../shared/errors.js';
import { chunkFile } from '../shared/content/binary-chunks.js';
import { createChunkStore, type ChunkStore } from '../shared/content/chunk-store.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../shared/ops-client.js';
import { MEDIA } from '../shared/protocol/http.js';
import { AGENT_APP, agentBinarySchema, type AgentBinary, type ReleaseManifest } from '../shared/protocol/manifest.js';
import { releaseVersionSchema } from '../shared/protocol/names.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { describeZodError } from '../shared/validation.js';
import { uploadMissingChunks } from './chunk-upload.js';

export class AgentPublishError extends TenderError {}

// Quality 5, not the 11 image chunks get: an executable is ~100 MB of machine code, and on this 2-core
// machine brotli-11 took 13 s per MB of node's own bytes (22 minutes for one publish), quality 5 0.4 s,
// for 5.7 % more bytes (10 MB of node: 4.43 MB at 11, 4.69 MB at 5). Most chunks (node itself) are the
// same in every version: only a first publish compresses them all.
const BROTLI_QUALITY = 5;

/**
 * Chunk an executable into `cache` (content-defined, so a new version shares every chunk the old one
 * has unchanged) and describe it as the signed manifest's `binary`: its size, sha256 and one index blob
 * listing the chunks in order.
 */
export async function chunkBinary(file: string, cache: ChunkStore, platform: string): Promise<AgentBinary> {
  const { size, sha256, index } = await chunkFile(file, cache, BROTLI_QUALITY);
  const r = agentBinarySchema.safeParse({ platform, size, sha256, index });
  if (!r.success) throw new AgentPublishError(`--binary ${file}: ${describeZodError(r.error, 'binary')}`);
  return r.data;
}

export const agentPublish: Command = {
  path: ['agent', 'publish'],
  summary: `publish the agent executable as a signed release of app ${AGENT_APP} (roll it out like any release)`,
  details:
    `The executable is chunked like an image layer, so a vessel fetches only the chunks its current agent ` +
    `lacks. Then: tender rollout start ${AGENT_APP}@VERSION --target ...`,
  options: {
    ...HUB_OPTIONS,
    binary: { type: 'string', description: 'the single executable (installer/build-sea.sh output)' },
    key: { type: 'string', description: 'release signing key file (never leaves this machine)' },
    version: { type: 'string', description: 'the version the executable reports (tender --version)' },
    platform: { type: 'string', description: 'what it runs on', default: `${process.platform}-${process.arch}` },
    sequence: { type: 'string', description: `release counter (default: the hub's next for ${AGENT_APP})` },
    out: { type: 'string', description: 'also write the signed manifest to this file' },
    cache: { type: 'string', description: 'local chunk cache', default: '~/.cache/tender/chunks' },
  },
  async run(ctx) {
    const file = requiredOpt(ctx, 'binary');
    const key = loadPrivateKey(requiredOpt(ctx, 'key'));
    const version = requiredOpt(ctx, 'version');
    const v = releaseVersionSchema.safeParse(version);
    if (!v.success) throw new UsageError(`--version ${describeZodError(v.error, JSON.stringify(version))}`);
    try {
      if (!statSync(file).isFile()) throw new UsageError(`--binary ${file} is not a file`);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--binary ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const target = resolveHubTarget(ctx);
    const cache = createChunkStore(
      stringOpt(ctx, 'cache') ?? join(ctx.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tender', 'chunks'),
    );
    const binary = await chunkBinary(file, cache, stringOpt(ctx, 'platform') ?? `${process.platform}-${process.arch}`);
    const seqText = stringOpt(ctx, 'sequence');
    if (seqText !== undefined && !/^\d{1,15}$/.test(seqText)) throw new UsageError('--sequence must be a whole number');
    const sequence = seqText
      ? Number(seqText)
      : (await opsCall(target, ROUTES.nextSequence, paths.nextSequence(AGENT_APP))).sequence;
    const manifest: ReleaseManifest = {
      _type: 'release',
      spec: 1,
      app: AGENT_APP,
      version,
      sequence,
      createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      services: {},
      images: {},
      binary,
    };
    const upload = await uploadMissingChunks(target, manifest, cache);
    const bytes = envelopeBytes(signEnvelope('release', manifest, [key]));
    const out = stringOpt(ctx, 'out');
    if (out) writeFileAtomic(out, bytes, 0o644);
    const res = await opsCall(target, ROUTES.publishRelease, paths.releases(), undefined, {
      raw: bytes,
      contentType: MEDIA.envelope,
    });
    return {
      ...res,
      binaryBytes: binary.size,
      sha256: binary.sha256,
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
    binaryBytes: number;
    chunks: number;
    chunksUploaded: number;
    uploadedBytes: number;
  }) =>
    `${r.created ? 'published' : 'already published'} ${r.app}@${r.version} (#${r.sequence}): executable of ` +
    `${(r.binaryBytes / 1e6).toFixed(1)} MB; ${r.chunksUploaded} of ${r.chunks} chunks uploaded ` +
    `(${(r.uploadedBytes / 1e6).toFixed(2)} MB)`,
};
