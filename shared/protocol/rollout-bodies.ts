import { z } from 'zod';
import { vesselSettingsSchema } from './bodies.js';
import { appNameSchema, releaseRefSchema } from './names.js';
import { ROLLOUT_OUTCOMES } from './rollout-outcome.js';
import { MAX_WINDOW_SPEC_LENGTH } from './maintenance-window.js';
import { ROLLBACK_DIRECTIVE_MAX_BYTES } from './rollback-directive.js';

/**
 * Bodies of the rollout API (DESIGN.md `## Rollouts in waves`): start a rollout in waves, list, show per
 * wave and per vessel, pause, resume, abort; maintenance windows and download settings per vessel or
 * group; the draft of a signed rollback directive (what the publisher signs on its own machine).
 */

const count = z.number().int().min(0);
const percent = z.number().min(0).max(100);
/** vessel:NAME or group:G (windows, settings, canaries). */
export const scopeSchema = z
  .string()
  .max(80)
  .regex(/^(vessel|group):[a-z0-9][a-z0-9-]{0,62}$/, 'must be vessel:NAME or group:NAME');

export const rolloutIdParams = z.strictObject({
  id: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
});

export const rolloutStartRequestSchema = z.strictObject({
  release: releaseRefSchema.describe('VERSION or APP@VERSION'),
  target: z.string().max(80).describe('all, group:NAME or vessel:NAME'),
  waves: z
    .array(z.number())
    .max(20)
    .optional()
    .describe('cumulative percentages per wave, increasing, ending at 100 (default [100])'),
  canary: z.array(z.string().max(80)).max(1000).optional().describe('vessel:NAME or group:G, first wave'),
  minSuccessPercent: z.number().optional().describe('a wave passes with at least this share of successes'),
  maxFailuresPercent: z.number().optional().describe('a wave passes with at most this share of failures'),
  minDone: z.number().int().optional().describe('at least this many vessels of a wave finished (default 1)'),
  waveQuorumPercent: z.number().optional().describe('a wave is done once this share finished (default 100)'),
  waveDeadlineSeconds: z.number().int().optional().describe("after this a wave's unfinished vessels fail"),
  rollback: z
    .strictObject({
      directive: z
        .string()
        .max(ROLLBACK_DIRECTIVE_MAX_BYTES * 2)
        .describe('base64 of the signed rollback directive envelope (signed on the publisher machine)'),
    })
    .optional()
    .describe('back to a release vessels already installed, with a signed directive'),
});
export type RolloutStartRequest = z.infer<typeof rolloutStartRequestSchema>;

const countsSchema = z.strictObject({ total: count, succeeded: count, failed: count, held: count, unfinished: count });
const rulesSchema = z.strictObject({
  waves: z.array(z.number()),
  threshold: z.strictObject({ kind: z.enum(['min-success', 'max-failures']), percent }),
  minDone: z.number().int(),
  quorumPercent: z.number(),
  deadlineMs: z.number().int().nullable(),
});

export const rolloutViewSchema = z
  .strictObject({
    id: z.number().int(),
    releaseId: z.number().int(),
    app: z.string(),
    version: z.string(),
    kind: z.enum(['release', 'rollback']),
    target: z.string(),
    state: z.enum(['active', 'paused', 'halted', 'completed', 'aborted']),
    rules: rulesSchema,
    canary: z.array(z.string()),
    currentWave: z.number().int().describe('highest wave started, from 0 (the canary wave)'),
    waveStartedAt: z.number().int().nullable(),
    reason: z.string().nullable().describe('why it halted or was aborted'),
    counts: countsSchema.nullable().describe('the counts of the wave that decided it'),
    directiveId: z.number().int().nullable(),
    createdAt: z.number().int().describe('unix ms'),
    createdBy: z.string(),
    updatedAt: z.number().int(),
    vessels: count.describe('vessels whose current target comes from this rollout'),
  })
  .meta({ id: 'Rollout' });
export type RolloutView = z.infer<typeof rolloutViewSchema>;

export const rolloutStartedSchema = z.strictObject({
  id: z.number().int(),
  release: z.strictObject({ app: z.string(), version: z.string(), sequence: z.number().int() }),
  target: z.string(),
  /** Every vessel the rollout covers, and the vessels of each wave. */
  vessels: z.array(z.string()),
  waves: z.array(z.array(z.string())),
  rollout: rolloutViewSchema,
});

export const rolloutListSchema = z.strictObject({ rollouts: z.array(rolloutViewSchema) });

export const rolloutMemberSchema = z.strictObject({
  vessel: z.string(),
  wave: z.number().int(),
  startedAt: z.number().int().nullable().describe('when its wave started; null: not started, keeps its release'),
  outcome: z.enum(ROLLOUT_OUTCOMES),
  failure: z.string().nullable(),
  reason: z.string().nullable(),
  progress: z.strictObject({ done: count, total: count }).nullable(),
  until: z.string().nullable().describe('waiting for the window until this time'),
  reportedAt: z.number().int().nullable(),
  supersededBy: z.number().int().nullable(),
});
export const rolloutShowSchema = z.strictObject({
  rollout: rolloutViewSchema,
  waves: z.array(
    z.strictObject({
      wave: z.number().int(),
      percent: z.number(),
      started: z.boolean(),
      counts: countsSchema,
      vessels: z.array(rolloutMemberSchema),
    }),
  ),
});
export type RolloutShow = z.infer<typeof rolloutShowSchema>;

// ---- rollback directives

export const rollbackDraftQuerySchema = z.strictObject({ release: releaseRefSchema });
export const rollbackDraftSchema = z.strictObject({
  app: appNameSchema,
  version: z.string(),
  sequence: z.number().int(),
  digest: z.string().describe("sha256 of the release's signed manifest envelope"),
  counter: z.number().int().describe('the counter the next directive of this app must carry (at least)'),
});

// ---- maintenance windows and download settings

export const windowSetRequestSchema = z.strictObject({
  scope: scopeSchema,
  spec: z.string().max(MAX_WINDOW_SPEC_LENGTH).describe('e.g. "Mon-Thu 02:00-04:00 UTC"'),
});
export const scopeRequestSchema = z.strictObject({ scope: scopeSchema });
export const windowListSchema = z.strictObject({
  windows: z.array(z.strictObject({ scope: z.string(), spec: z.string(), setAt: z.number().int(), setBy: z.string() })),
});
export const clearedSchema = z.strictObject({ scope: z.string(), cleared: z.boolean() });

export const settingsSetRequestSchema = z.strictObject({ scope: scopeSchema, settings: vesselSettingsSchema });
export const settingsListSchema = z.strictObject({
  settings: z.array(
    z.strictObject({
      scope: z.string(),
      settings: vesselSettingsSchema,
      setAt: z.number().int(),
      setBy: z.string(),
    }),
  ),
});
