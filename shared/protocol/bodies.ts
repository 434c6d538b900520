import { z } from 'zod';

/** Bodies both sides speak over /api/v1, as zod schemas so the types come from one place. */

/** Manifests up to this size ride in the desired state (most do: the bench's is 2.3 KB). */
export const EMBEDDED_MANIFEST_MAX_BYTES = 16 * 1024;

export const desiredStateSchema = z.strictObject({
  vessel: z.string(),
  /** The release this vessel should run; null until a rollout targets it. */
  release: z
    .strictObject({ app: z.string(), version: z.string(), sequence: z.number().int(), rolloutId: z.number().int() })
    .nullable(),
  /** Latest root version on the hub; a vessel behind it walks the chain. */
  rootVersion: z.number().int(),
  /**
   * The release's signed manifest (base64 of its envelope), when the vessel asked for it (`?with=manifest`)
   * and it is small: one round trip fewer per update. The vessel verifies it exactly as a fetched one.
   */
  manifest: z
    .string()
    .max(EMBEDDED_MANIFEST_MAX_BYTES * 2)
    .optional(),
});
export type DesiredState = z.infer<typeof desiredStateSchema>;

export const serviceHealthSchema = z.strictObject({
  name: z.string().max(128),
  state: z.enum(['healthy', 'unhealthy', 'starting', 'stopped', 'unknown']),
  detail: z.string().max(512).optional(),
});

export const vesselStatusReportSchema = z.strictObject({
  agentVersion: z.string().max(64),
  current: z.string().max(128).nullable(),
  previous: z.string().max(128).nullable(),
  pending: z.string().max(128).nullable(),
  held: z.boolean(),
  rootVersion: z.number().int().min(1),
  backlog: z.number().int().min(0),
  services: z.array(serviceHealthSchema).max(256),
  bootId: z.string().max(64),
  reportedAt: z.string().max(40),
});
export type VesselStatusReport = z.infer<typeof vesselStatusReportSchema>;

export const enrolResponseSchema = z.strictObject({
  vesselId: z.string().regex(/^v_[0-9a-f]{16}$/),
  name: z.string(),
  groups: z.array(z.string()),
  root: z.string(),
});
export type EnrolResponse = z.infer<typeof enrolResponseSchema>;
