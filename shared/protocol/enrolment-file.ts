import { z } from 'zod';

/**
 * The offline enrolment file: what a vessel with no link needs to start trusting and, when the link first
 * comes up, to enrol itself. It holds a one-time credential, so it is written 0600 and used once.
 */
export const enrolmentFileSchema = z.strictObject({
  kind: z.literal('tender-enrolment'),
  version: z.literal(1),
  hub: z.url(),
  vessel: z.string(),
  token: z.string().max(200),
  expiresAt: z.iso.datetime(),
  /** base64 of the signed root document the token pins. */
  root: z.string().max(2 * 1024 * 1024),
  /** PEM of the certificate the token's TLS pin names (absent when the hub serves plain HTTP). */
  hubCa: z
    .string()
    .max(64 * 1024)
    .optional(),
});
export type EnrolmentFile = z.infer<typeof enrolmentFileSchema>;
