import { z } from 'zod';
import { ROLES } from './names.js';
import { issuedTokenSchema } from './bodies.js';

/**
 * Bodies of the ops-token, audit and re-key routes (issue 10): tokens that can be listed and revoked, an
 * audit log that can be read and exported, and the admin's explicit re-key of an enrolled vessel.
 */

const isoTime = z.iso.datetime();

/** Ops tokens live 90 days unless asked otherwise; at most two years. */
export const OPS_TOKEN_DEFAULT_TTL_SECONDS = 90 * 24 * 3600;
export const opsTokenIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'a token id is 16 hex digits');
export const opsTokenParams = z.strictObject({ id: opsTokenIdSchema });

export const opsTokenViewSchema = z.strictObject({
  id: z.string(),
  role: z.enum(ROLES),
  name: z.string(),
  state: z.enum(['active', 'expired', 'revoked']),
  createdAt: isoTime,
  expiresAt: isoTime.nullable().describe('null: a token made before tokens had an expiry'),
  revokedAt: isoTime.nullable(),
});
export type OpsTokenView = z.infer<typeof opsTokenViewSchema>;
export const opsTokenListSchema = z.strictObject({ tokens: z.array(opsTokenViewSchema) });

export const AUDIT_PAGE_MAX = 1000;
export const auditQuerySchema = z.strictObject({
  after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional().describe('page on after this id'),
  since: isoTime.optional().describe('only records at or after this time'),
  limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).default(100),
});
export const auditRecordSchema = z.strictObject({
  id: z.number().int(),
  at: isoTime,
  actor: z.string(),
  action: z.string(),
  detail: z.unknown(),
});
export type AuditRecordView = z.infer<typeof auditRecordSchema>;
export const auditPageSchema = z.strictObject({
  records: z.array(auditRecordSchema),
  next: z.number().int().nullable().describe('pass as `after` for the next page; null when this was the last'),
});

export const rekeyRequestSchema = z
  .strictObject({
    offline: z.boolean().default(false),
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(365 * 24 * 3600)
      .optional(),
  })
  .prefault({});
export const rekeyIssuedSchema = issuedTokenSchema.extend({
  tokensCancelled: z.number().int().describe("the vessel's other unused tokens, cancelled by this one"),
});
