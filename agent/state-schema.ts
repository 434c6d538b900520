import { z } from 'zod';
import { desiredStateSchema } from '../shared/protocol/bodies.js';
import { ROLLOUT_OUTCOMES } from '../shared/protocol/rollout-outcome.js';
import { linkMeterStateSchema } from './link-meter.js';
import { downloadProgressSchema } from './release/transfer/progress.js';

/** How the last exchange with the hub went; `unknown` only in views, before the first attempt. */
export const linkStateSchema = z.enum(['up', 'down', 'refused']);
export type LinkState = z.infer<typeof linkStateSchema> | 'unknown';

/**
 * The crew rolled back: the shore target is not applied until a release newer than `sequence` or a resume.
 * `app`: the app held (absent in holds from before several apps: every app).
 */
export const crewHoldSchema = z.strictObject({ sequence: z.number().int().min(0), app: z.string().optional() });
export type CrewHold = z.infer<typeof crewHoldSchema>;

/** A release just made live, watched until `until`; a crash loop or failing health rolls it back. */
export const watchSchema = z.strictObject({
  /** Absent in watches from before several apps: the app of the one live release. */
  app: z.string().optional(),
  version: z.string(),
  rolloutId: z.number().int().nullable().optional(),
  until: z.number(),
  /** Each service's restart count at the flip: more restarts than this within the window is a crash loop. */
  restarts: z.record(z.string(), z.number().int().min(0)),
  /** The release live before, left running through the window (a rollback then is a router flip). */
  warm: z.string().optional(),
});
export type Watch = z.infer<typeof watchSchema>;

export const releaseResultSchema = z.strictObject({
  version: z.string(),
  result: z.enum(['live', 'failed', 'rolled-back', 'refused', 'waiting']),
  reason: z.string().nullable(),
  at: z.string(),
});
export type ReleaseResult = z.infer<typeof releaseResultSchema>;

const isoTime = z.string().max(40);

/** A release the crew carried aboard (`tender bundle import`): a target beside the hub's, newest wins. */
export const carriedReleaseSchema = z.strictObject({
  app: z.string().max(64),
  version: z.string().max(64),
  sequence: z.number().int().min(1),
  /** sha256 (hex) of the signed manifest envelope. */
  digest: z.string().max(64),
  importedAt: isoTime,
  by: z.string().max(200),
});
export type CarriedRelease = z.infer<typeof carriedReleaseSchema>;

/** The last `rollout.outcome` sent for an app's target: a new event only when it changes. */
export const sentOutcomeSchema = z.strictObject({
  version: z.string(),
  outcome: z.enum(ROLLOUT_OUTCOMES),
  failure: z.string().optional(),
  until: z.string().optional(),
  /** Kept for the status report (the pending release's reason and download progress): not compared. */
  reason: z.string().max(512).optional(),
  progress: z.strictObject({ done: z.number().int().min(0), total: z.number().int().min(0) }).optional(),
});

/**
 * Every key of the agent's key-value state (the `kv` table) with the schema of its value, in one place.
 * A read is typed by its key; a stored value that does not fit (written by another version, altered on
 * disk) reads as absent and is logged once. Facts that are rows live in tables of their own, each with
 * its module: the releases on board and which of them serves (release/board-releases.ts), the update
 * journal (release/journal.ts), manifests refused (release/refused-manifests.ts).
 */
export const STATE_SCHEMA = {
  /** The shore target as last received, and its validator: an unchanged target costs a 304. */
  desired: desiredStateSchema,
  'desired.etag': z.string(),
  /** Why the last desired state from the hub was refused (not for this vessel, a bad name): logged once. */
  'desired.refused': z.string(),
  /** Offset of the hub's clock from ours (its Date header), applied to request signatures. */
  'hub.skewMs': z.number(),
  /** The hub takes the compact signature form (it said so on a desired state): 60 bytes fewer a request. */
  'hub.compactAuth': z.boolean(),
  /** The sequence of the hub-tls announcement whose CAs are pinned (hub-ca.pem): a lower one is a replay. */
  'hubTls.sequence': z.number().int().min(1),
  /** Why the last hub-tls announcement was refused: its event is sent once. */
  'hubTls.refused': z.string(),
  'link.state': linkStateSchema,
  'link.lastOk': isoTime,
  'link.lastError': z.string(),
  /** Set by the crew (`tender link cheap|metered`): downloads may be limited to a cheap link. */
  'link.cheap': z.boolean(),
  'sync.lastAt': isoTime,
  /** Fingerprint of the last status report the hub accepted, and when: unchanged reports wait. */
  'status.lastReport': z.strictObject({ fingerprint: z.string(), at: z.number() }),
  /** The release live before the current one, as of the last switch (the current one: the releases table). */
  'release.previous': z.string(),
  /** The shore target not live yet. */
  'release.pending': z.string(),
  /** The release download under way (or the last one, cut): percent, rate and time left are read from it. */
  'download.progress': downloadProgressSchema,
  'release.lastResult': releaseResultSchema,
  'crew.hold': crewHoldSchema,
  watch: watchSchema,
  /** The newest signed time seen (ms): the trusted clock never goes below it. */
  'time.floor': z.number(),
  /** The last target refused as older than what is on board (its event is sent once). */
  'refused.version': z.string(),
  /** Releases carried aboard on a bundle, one per app (the newest imported). */
  carried: z.array(carriedReleaseSchema).max(64),
  /** The last release refused for want of disk (its event is sent once). */
  'disk.refused': z.string(),
  /** Per app, the counter of the last rollback directive accepted: one at or below it is a replay. */
  'directive.counters': z.record(z.string(), z.number().int().min(0)),
  /** The last refused return to a kept release, APP@VERSION: reason (its event is sent once). */
  'rollback.refused': z.string(),
  /** Per app, the last rollout outcome reported (a `rollout.outcome` event goes out when it changes). */
  'rollout.outcomes': z.record(z.string(), sentOutcomeSchema),
  /** The link meter (hub exchanges' bytes per hour for a day, recent round trips), kept across restarts. */
  'link.meter': linkMeterStateSchema,
  /** Per APP/SERVICE, how often drift repair started the live container again (missing, exited, replaced). */
  'drift.restarts': z.record(z.string(), z.number().int().min(0)),
  /** Per app, the release the crew said to apply now (`tender apply`), outside its maintenance window. */
  'apply.now': z.record(z.string(), z.string()),
} satisfies Record<string, z.ZodType>;

export type StateKey = keyof typeof STATE_SCHEMA;
export type StateValue<K extends StateKey> = z.infer<(typeof STATE_SCHEMA)[K]>;
/** Several keys written together; null removes a key. */
export type StateValues = { [K in StateKey]?: StateValue<K> | null };
