import { z } from 'zod';
import { TenderError } from '../errors.js';
import { readEnvelope } from '../trust/envelope.js';
import { verifySignedDocument, type TrustedRoot } from '../trust/root.js';
import { describeZodError } from '../validation.js';
import { appNameSchema, chunkDigestSchema, releaseVersionSchema } from './names.js';
import { serviceSpecSchema, undeclaredHostAccess } from './release-spec.js';

export { releaseVersionSchema };

/**
 * The signed release manifest: services normalised from the compose file, the images they run, and a
 * monotonic sequence number that lets a vessel refuse an older release replayed after a newer one.
 */
// A manifest names services, images and one index per layer: a few KB. 8 MB is far past any real one
// and small enough to refuse while streaming (ATTACKS.md 12).
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/** [sha256 of the raw chunk, raw size, compressed size]: the vessel fetches by digest, checks by size. */
export const chunkRefSchema = z.tuple([chunkDigestSchema, z.number().int().min(0), z.number().int().min(0)]);
export type ChunkRef = z.infer<typeof chunkRefSchema>;

export const layerSchema = z.strictObject({
  /** sha256 of the uncompressed layer tar, as Docker's image config lists it. */
  diffId: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  size: z.number().int().min(0),
  /**
   * The layer's index blob (its tar headers and the ordered list of content chunks; see layer-index.ts),
   * fetched as one chunk. Absent: the image must already be on board.
   */
  index: chunkRefSchema.optional(),
});

export const imageSchema = z.strictObject({
  refs: z.array(z.string()),
  layers: z.array(layerSchema).max(256),
  /** The image config (its sha256 is the image ID), chunked like a layer. */
  config: z.strictObject({ size: z.number().int().min(0), chunks: z.array(chunkRefSchema) }).optional(),
});

/**
 * The highest sequence a release may carry (2^40: a release a second for 34,000 years). Bounded so that
 * one signed manifest cannot take the whole number space and freeze its app (ATTACKS.md 36).
 */
export const MAX_RELEASE_SEQUENCE = 2 ** 40;

/**
 * The app name the agent's own executable is published under (`tender agent publish`): a release of it
 * carries `binary` and nothing else, and rolls out with the same rollouts, windows and trust as any app.
 */
export const AGENT_APP = 'tender-agent';

/**
 * The agent executable as a release artifact: its bytes are content-defined chunks listed by one index
 * blob (a layer index with an empty meta stream), so vN+1 costs only the chunks vN lacks.
 */
export const agentBinarySchema = z.strictObject({
  /** Node's platform-arch the executable runs on (e.g. linux-x64): a vessel refuses another one. */
  platform: z.string().regex(/^[a-z0-9]+-[a-z0-9_]+$/),
  size: z
    .number()
    .int()
    .min(1)
    .max(1024 * 1024 * 1024),
  /** sha256 of the whole executable, hex: checked after reassembly, before it is ever run. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  index: chunkRefSchema,
});
export type AgentBinary = z.infer<typeof agentBinarySchema>;

export const releaseManifestSchema = z.strictObject({
  _type: z.literal('release'),
  spec: z.literal(1),
  app: appNameSchema,
  version: releaseVersionSchema,
  sequence: z.number().int().min(1).max(MAX_RELEASE_SEQUENCE),
  createdAt: z.iso.datetime(),
  services: z.record(z.string(), serviceSpecSchema),
  images: z.record(z.string().regex(/^sha256:[0-9a-f]{64}$/), imageSchema),
  /** Only in a release of AGENT_APP: the agent executable (then services and images are empty). */
  binary: agentBinarySchema.optional(),
});
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

export class ManifestError extends TenderError {}

/**
 * The manifest trust check both sides run: the envelope read under the size cap, its signatures checked
 * against the release keys of `root`, its payload against the schema. The hub runs it as a first line at
 * publish; the vessel runs it before it acts on a manifest, and again on every kept one it goes back to.
 * Expiry is not checked here: what may still be installed after expiry is the caller's rule.
 */
export function verifyManifest(root: TrustedRoot, bytes: Uint8Array): ReleaseManifest {
  const env = readEnvelope(bytes, MAX_MANIFEST_BYTES);
  const doc = verifySignedDocument(root, env, 'release');
  const r = releaseManifestSchema.safeParse(doc.payload);
  if (!r.success) throw new ManifestError(`release manifest invalid: ${describeZodError(r.error, 'payload')}`);
  const isAgent = r.data.app === AGENT_APP;
  if (isAgent !== (r.data.binary !== undefined))
    throw new ManifestError(
      isAgent
        ? `release manifest invalid: app ${AGENT_APP} is the agent executable and must carry binary`
        : `release manifest invalid: only app ${AGENT_APP} may carry binary`,
    );
  if (isAgent && (Object.keys(r.data.services).length > 0 || Object.keys(r.data.images).length > 0))
    throw new ManifestError(`release manifest invalid: an ${AGENT_APP} release carries no services or images`);
  // A manifest signed by hand (not through parseCompose) is held to the same rule: no silent host access.
  for (const [name, s] of Object.entries(r.data.services)) {
    const why = undeclaredHostAccess(s.volumes, s.hostAccess ?? []);
    if (why) throw new ManifestError(`release manifest invalid: service ${name} ${why}`);
  }
  return r.data;
}
