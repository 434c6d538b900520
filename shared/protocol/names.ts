import { z } from 'zod';

/**
 * Names that cross the wire and end up in SQL, file paths and container names: one strict pattern each,
 * checked at the edge before use (ATTACKS.md 31, 41).
 */
export const vesselNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'must be 1-63 lower-case letters, digits or dashes, starting with a letter or digit',
  );
export const groupNameSchema = vesselNameSchema;

export const appNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, - or _');

export const releaseVersionSchema = z
  .string()
  .regex(/^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/, 'must be 1-64 letters, digits, . _ + -');

/** APP@VERSION, as a vessel names a release it was targeted with. */
export const appVersionSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}@[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/, 'must be APP@VERSION');

/** VERSION or APP@VERSION, as ops name a release. */
export const releaseRefSchema = z
  .string()
  .regex(/^([a-z0-9][a-z0-9_-]{0,62}@)?[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/, 'must be VERSION or APP@VERSION');

/** sha256 of a chunk's raw content, lower-case hex. */
export const chunkDigestSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits');

export const vesselIdSchema = z.string().regex(/^v_[0-9a-f]{16}$/);

/** Ops token roles, weakest first: each role may do what the ones before it may. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];
