import { z } from 'zod';
import { appNameSchema, chunkDigestSchema, groupNameSchema, releaseVersionSchema, vesselNameSchema } from './names.js';

/**
 * A signed rollback directive (DSSE envelope, document type `rollback`, signed by a release key on the
 * publisher's machine, never by the hub): the only way, besides the crew, that a vessel goes back to a
 * release it already installed (DESIGN.md `## Rollouts in waves`).
 *
 * A vessel accepts one when: a release key of its trusted root signed it; it names this vessel (by name or
 * by one of its groups, or `all`); `app` is the app it would change; `version` + `digest` name a release
 * kept on board; `expires` is after the corrected clock; and `counter` is above the last counter it
 * accepted for that app (replay). Anything else is refused with an event (`rollback.refused`).
 */
export const ROLLBACK_DIRECTIVE_MAX_BYTES = 8 * 1024;
/** The longest a directive may live: one signed for longer is refused at signing and on board. */
export const ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS = 90 * 24 * 3600 * 1000;

export const rollbackTargetsSchema = z.strictObject({
  all: z.boolean().optional(),
  vessels: z.array(vesselNameSchema).max(10_000).optional(),
  groups: z.array(groupNameSchema).max(256).optional(),
});

export const rollbackDirectiveSchema = z.strictObject({
  app: appNameSchema,
  version: releaseVersionSchema,
  /** sha256 (hex) of the release's signed manifest envelope: the release is named by its bytes. */
  digest: chunkDigestSchema,
  /** The release sequence of that manifest (informative; the digest decides). */
  sequence: z
    .number()
    .int()
    .min(0)
    .max(2 ** 40),
  targets: rollbackTargetsSchema,
  issuedAt: z.iso.datetime(),
  expires: z.iso.datetime(),
  /** Strictly increasing per app across directives: a vessel refuses one at or below the last it took. */
  counter: z
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
  reason: z.string().max(512).optional(),
});
export type RollbackDirective = z.infer<typeof rollbackDirectiveSchema>;

/** Whether a directive's targets name this vessel (by name, a group it belongs to, or all). */
export function directiveTargets(d: RollbackDirective, vessel: string, groups: readonly string[]): boolean {
  const t = d.targets;
  return t.all === true || (t.vessels ?? []).includes(vessel) || (t.groups ?? []).some((g) => groups.includes(g));
}
