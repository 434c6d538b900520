import { z } from 'zod';
import { groupNameSchema } from '../../shared/protocol/names.js';
import { FLEET_SORTS, FLEET_STATES } from '../store/page-records.js';
import { ROLLOUT_OUTCOMES } from '../../shared/protocol/rollout-outcome.js';

/**
 * The fleet page's query string. Strict: an unknown parameter, a negative page or an over-long search is
 * a 400 naming the field, never a 500 and never silently ignored. Empty fields (a submitted form) are absent.
 */
const blank = (v: unknown) => (v === '' ? undefined : v);
export const fleetPageQuerySchema = z.strictObject({
  q: z.preprocess(blank, z.string().max(200).optional()),
  group: z.preprocess(blank, groupNameSchema.optional()),
  state: z.preprocess(blank, z.enum(FLEET_STATES).optional()),
  release: z.preprocess(blank, z.string().max(130).optional()),
  rollout: z.preprocess(
    blank,
    z.coerce
      .number()
      .int()
      .min(1)
      .max(2 ** 31)
      .optional(),
  ),
  sort: z.preprocess(blank, z.enum(FLEET_SORTS).default('name')),
  dir: z.preprocess(blank, z.enum(['asc', 'desc']).default('asc')),
  page: z.preprocess(blank, z.coerce.number().int().min(1).max(100_000).default(1)),
  per: z.preprocess(blank, z.coerce.number().int().min(10).max(500).default(50)),
});
export type FleetPageQuery = z.infer<typeof fleetPageQuerySchema>;

export const vesselPageQuerySchema = z.strictObject({
  grep: z.preprocess(
    blank,
    z
      .string()
      .max(200)
      // eslint-disable-next-line no-control-regex -- control characters (NUL first) are refused
      .regex(/^[^\x00-\x1f\x7f]*$/, 'must not contain control characters')
      .optional(),
  ),
});

/** A rollout page's query: which page of its vessels, and which outcome only (strict, as the fleet's). */
export const rolloutViewSchema = z.strictObject({
  page: z.preprocess(blank, z.coerce.number().int().min(1).max(100_000).default(1)),
  outcome: z.preprocess(
    blank,
    z.enum([...ROLLOUT_OUTCOMES, 'not started', 'superseded'] as [string, ...string[]]).optional(),
  ),
});
