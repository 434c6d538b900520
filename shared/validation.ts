import type { z } from 'zod';

/**
 * The one way a zod failure becomes text: the first issue as `where: what`, one line. `where` is the
 * field's dotted path (`services.web.ports`), or `whole` when the value itself is wrong (a file, a body,
 * the top level). Unknown keys are named, since that is what a person has to delete.
 */
export function describeZodError(error: z.core.$ZodError, whole: string): string {
  const issue = error.issues[0];
  if (!issue) return `${whole}: invalid`;
  return describeIssue(issue.path, issue.message, whole, issue.code === 'unrecognized_keys' ? issue.keys : undefined);
}

/** One issue as `where: what` (also for issues that arrive already flattened, as fastify passes them). */
export function describeIssue(
  path: readonly PropertyKey[],
  message: string,
  whole: string,
  unknownKeys?: readonly string[],
): string {
  const where = path.length ? path.map(String).join('.') : whole;
  const what = unknownKeys?.length
    ? `unsupported key ${unknownKeys.map((k) => JSON.stringify(k)).join(', ')}`
    : message;
  return `${where}: ${what}`;
}
