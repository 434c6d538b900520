import { z } from 'zod';
import { serviceSpecSchema } from './release-spec.js';

/**
 * The signed release manifest: services normalised from the compose file, the images they run, and a
 * monotonic sequence number that lets a vessel refuse an older release replayed after a newer one.
 */
// A manifest names services, images and one index per layer: a few KB. 8 MB is far past any real one
// and small enough to refuse while streaming (ATTACKS.md 12).
export const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

export const releaseVersionSchema = z
  .string()
  .regex(/^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/, 'must be 1-64 letters, digits, . _ + -');

/** [sha256 of the raw chunk, raw size, compressed size]: the vessel fetches by digest, checks by size. */
export const chunkRefSchema = z.tuple([
  z.string().regex(/^[0-9a-f]{64}$/),
  z.number().int().min(0),
  z.number().int().min(0),
]);
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

export const releaseManifestSchema = z.strictObject({
  _type: z.literal('release'),
  spec: z.literal(1),
  app: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/),
  version: releaseVersionSchema,
  sequence: z.number().int().min(1),
  createdAt: z.iso.datetime(),
  services: z.record(z.string(), serviceSpecSchema),
  images: z.record(z.string().regex(/^sha256:[0-9a-f]{64}$/), imageSchema),
});
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;
