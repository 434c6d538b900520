import type { Readable } from 'node:stream';
import { TenderError } from '../../shared/errors.js';
import type { Role } from '../../shared/protocol/names.js';
import type { DirectiveRecords, RolloutRecords, SettingsRecords, WindowRecords } from './rollout-records.js';
import type { PageRecords } from './page-records.js';

/**
 * Everything the hub stores, behind one asynchronous interface: SQLite and a chunk folder on one machine
 * today (sqlite/sqlite-hub-store.ts, file-chunk-store.ts), PostgreSQL and an S3-compatible object store
 * for several hub processes next. Routes, auth, desired state, metrics, the page, the rollout engine and
 * the commands talk to this and nothing else.
 *
 * Atomicity: every multi-step change the hub needs is ONE method here, not a `transaction(async (tx) =>
 * ...)` handed to callers. Why:
 * - better-sqlite3 is synchronous and one connection serves the whole process. A transaction that stays
 *   open across an `await` either lets other requests' statements run inside it, or needs a process-wide
 *   lock held while the callback awaits (a chunk read, a slow client): one slow caller stalls the hub.
 *   A method runs its statements in one synchronous transaction and cannot be interleaved.
 * - On PostgreSQL a callback transaction pins a pooled connection across round trips, and under READ
 *   COMMITTED its read-then-write is still racy unless every caller remembers FOR UPDATE; a serialization
 *   failure means re-running the callback, side effects and all. Inside a method the implementation picks
 *   the primitive once, and the shared test suite races it:
 *     claim an enrolment token: UPDATE enrolment_tokens SET used_at = $now ... WHERE token_hash = $1 AND
 *       used_at IS NULL AND expires_at > $now RETURNING vessel_id (the row lock makes exactly one winner),
 *       then set the vessel's key, in one transaction;
 *     telemetry: INSERT ... ON CONFLICT (vessel_id, epoch, seq) DO NOTHING RETURNING id; counters grow by
 *       the rows actually inserted, in the same transaction, so two hubs ingesting one retried batch store
 *       it once;
 *     create a vessel with its token, revoke a vessel and cancel its tokens, start a rollout and set its
 *       targets: one transaction each; UNIQUE (name) turns a racing duplicate into 'exists';
 *     publish a release: UNIQUE (app, version) and UNIQUE (app, sequence), the "above the latest"
 *       check under pg_advisory_xact_lock(app) (or SELECT ... FOR UPDATE), so two publishes cannot both
 *       pass it;
 *     a root: PRIMARY KEY (version) plus "exactly latest + 1"; a pack: its id names its contents,
 *       ON CONFLICT DO NOTHING.
 * - Every method is safe to retry after a lost connection: it either changed nothing, or a second call
 *   finds the work done (created: false, duplicates counted) instead of doing it twice.
 * A new atomic need becomes a new method with a race test in test/store/hub-store-suite.ts.
 *
 * Ops actions pass `audit`: it is written in the same transaction when the call succeeds (a repeat that
 * changes nothing included), and not at all when the call is refused.
 * Callers pass `now` (the hub's clock, corrected or faked in tests), so every engine records the same time.
 * Trust is checked by callers before they store (manifest and root signatures need the trusted root and
 * belong to shared/trust); the store keeps the storage invariants: uniqueness, order, exactly once.
 * Lists have a fixed order (stated per method) and bounded limits; names sort in byte order (COLLATE "C"
 * on PostgreSQL, whose default collation would sort 'ship-b' and 'shipa' differently).
 */
export interface HubStore {
  readonly vessels: VesselRecords;
  readonly requests: RequestRecords;
  readonly enrolment: EnrolmentRecords;
  readonly opsTokens: OpsTokenRecords;
  readonly roots: RootRecords;
  readonly releases: ReleaseRecords;
  readonly rollouts: RolloutRecords;
  readonly windows: WindowRecords;
  readonly directives: DirectiveRecords;
  readonly settings: SettingsRecords;
  readonly telemetry: TelemetryRecords;
  readonly audit: AuditRecords;
  readonly packs: PackRecords;
  readonly policies: PolicyRecords;
  readonly hubTls: HubTlsRecords;
  readonly backups: BackupRecords;
  /** The status page's fleet query, counts, vessel rollout history and browser sessions (page-records.ts). */
  readonly page: PageRecords;
  readonly chunks: HubChunkStore;
  /**
   * Counters in fixed windows shared by every hub process on the store (PostgreSQL): rate limits then
   * hold across hubs. Absent on the embedded store (one process), whose limits count in memory.
   */
  readonly counters?: SharedCounterRecords;
  /** Resolves when the store can serve (the readiness probe); rejects with the reason. */
  ping(): Promise<void>;
  /** Releases the connections; closing twice is harmless. */
  close(): Promise<void>;
}

/**
 * What the store refuses, with the code and HTTP status the hub's edge answers with. Codes: exists,
 * stale_sequence, ambiguous, stale_root, root_conflict, root_gap, bad_token, token_used, token_expired,
 * revoked, enrolled, not_found, empty_target, bad_target, bad_digest, chunk_missing, bad_range, bad_rollout, bad_state,
 * stale_counter.
 */
export class HubStoreError extends TenderError {
  constructor(message: string, code: string, status: number) {
    super(message, code, 1, status);
  }
}

// ---- shared counters (rate limits across hub processes) ----

export interface SharedCounterRecords {
  /**
   * Adds `amount` to KEY's count in its current window of `windowMs` (a new window starts at the first
   * hit after the last one ended); returns the count so far and when the window ends.
   */
  hit(key: string, windowMs: number, now: number, amount?: number): Promise<{ count: number; resetAt: number }>;
}

// ---- audit ----

/** Who did what; `at` is the `now` of the operation it belongs to. */
export interface AuditEntry {
  actor: string;
  action: string;
  detail: unknown;
}
export interface AuditRecord extends AuditEntry {
  id: number;
  at: number;
}
export interface AuditRecords {
  append(entry: AuditEntry, now: number): Promise<number>;
  /** Oldest first (by id); `after` (an id) pages on, `since` (ms) filters by time. */
  list(q: { limit: number; after?: number; since?: number }): Promise<AuditRecord[]>;
}

// ---- vessels and enrolment ----

export interface Vessel {
  id: string;
  name: string;
  /** Sorted, without duplicates. */
  groups: string[];
  publicKey: string | null;
  createdAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
  lastContact: number | null;
  lastAddress: string | null;
  currentRelease: string | null;
  agentVersion: string | null;
  status: unknown;
  /** When the hub received the stored status report (hub time); undefined from stores that do not keep it. */
  statusReceivedAt?: number | null;
}

/** An enrolment token as stored: only the sha256 of its secret. */
export interface NewEnrolmentToken {
  tokenHash: string;
  kind: 'online' | 'offline';
  expiresAt: number;
  /** May replace the key of an enrolled vessel (an admin's explicit re-key); others enrol a new vessel only. */
  rekey?: boolean;
}

export interface VesselRecords {
  get(id: string): Promise<Vessel | undefined>;
  getByName(name: string): Promise<Vessel | undefined>;
  /** By name; `group` filters before paging; `after` (a name) or `offset` pages. */
  list(q: { limit: number; offset?: number; after?: string; group?: string }): Promise<Vessel[]>;
  /** A new vessel with its first enrolment token and the audit record, all or nothing ('exists' on a name clash). */
  create(
    v: { name: string; groups: string[]; token?: NewEnrolmentToken; audit?: AuditEntry },
    now: number,
  ): Promise<Vessel>;
  /** Last contact and the address it came from. */
  touch(id: string, address: string, now: number): Promise<void>;
  /**
   * The vessel's latest status report. With `at` (the vessel time of the signed request), a report older
   * than the one stored changes nothing and answers false: a replayed or late report never overwrites a
   * newer one.
   */
  report(
    id: string,
    r: {
      currentRelease: string | null;
      agentVersion: string;
      status: unknown;
      /** Hub time of receipt (kept beside the report: its age). */
      receivedAt?: number;
      /** The report's facts as words, ",failing,held," (hub/page/facts.ts statusFlags): what the fleet filters on. */
      flags?: string;
    },
    at?: number,
  ): Promise<boolean>;
  /** Revokes the vessel and cancels its unused enrolment tokens in one step; `revoked` is false if it already was. */
  revoke(id: string, now: number, audit?: AuditEntry): Promise<{ revoked: boolean; tokensCancelled: number }>;
  /** Unrevoked vessels, and those of them heard from at or after `activeSince`. */
  counts(activeSince: number): Promise<{ total: number; active: number }>;
}

export interface EnrolmentRecords {
  /**
   * Another token for an existing vessel ('revoked' when it is revoked, 'not_found' when unknown). For an
   * enrolled vessel only a re-key token ('enrolled' otherwise), and issuing one cancels every other unused
   * token of the vessel in the same step (answered as tokensCancelled).
   */
  issue(
    vesselId: string,
    token: NewEnrolmentToken,
    now: number,
    audit?: AuditEntry,
  ): Promise<{ tokensCancelled: number }>;
  /**
   * Uses the token exactly once: of any number of racing claims one records its key and gets the vessel id;
   * the others fail with 'token_used'. Also 'bad_token' (unknown), 'token_expired' (expired or cancelled),
   * 'revoked' (the token stays unused), 'enrolled' (the vessel has a key and the token is not a re-key
   * token: a token issued before enrolment cannot replace the key after it). A successful claim cancels
   * every other unused token of the vessel.
   */
  claim(c: { tokenHash: string; publicKey: string; address: string }, now: number): Promise<string>;
}

// ---- signed request replay ----

export interface RequestRecords {
  /**
   * Records a signed vessel request by a key naming it (a digest of its signature) until `expiresAt`
   * (the end of its clock window): true the first time, false for any later use, from any hub process.
   * Expired keys of the vessel are forgotten in the same step, so the table holds one window's requests.
   */
  firstUse(vesselId: string, key: string, expiresAt: number, now: number): Promise<boolean>;
}

// ---- ops tokens ----

export interface OpsTokenRecord {
  id: string;
  tokenHash: string;
  role: Role;
  name: string;
  createdAt: number;
  revokedAt: number | null;
  /** After this (ms) the token is refused; null: no expiry (tokens made before expiry existed). */
  expiresAt: number | null;
}
export interface OpsTokenRecords {
  create(
    t: { id: string; tokenHash: string; role: Role; name: string; expiresAt?: number | null },
    now: number,
    audit?: AuditEntry,
  ): Promise<void>;
  get(id: string): Promise<OpsTokenRecord | undefined>;
  /** Oldest first. */
  list(): Promise<OpsTokenRecord[]>;
  /** False when unknown or already revoked. */
  revoke(id: string, now: number, audit?: AuditEntry): Promise<boolean>;
}

// ---- roots ----

export interface RootRecord {
  version: number;
  envelope: Buffer;
  expires: string;
  addedAt: number;
}
export interface RootRecords {
  latest(): Promise<RootRecord | undefined>;
  get(version: number): Promise<Buffer | undefined>;
  /** Oldest first, without the envelopes. */
  list(): Promise<Omit<RootRecord, 'envelope'>[]>;
  /**
   * Stores a root the caller verified against latest(): the first one, or exactly latest + 1. The same
   * bytes again: created false. Otherwise 'stale_root' (not newer), 'root_conflict' (that version exists
   * with other bytes, e.g. another hub won the race), 'root_gap' (skips a version).
   */
  add(
    r: { version: number; envelope: Buffer; expires: string },
    now: number,
    audit?: AuditEntry,
  ): Promise<{ created: boolean }>;
}

// ---- releases ----

export interface StoredRelease {
  id: number;
  app: string;
  version: string;
  sequence: number;
  createdAt: number;
  publishedBy: string;
}
export interface ReleaseRecords {
  /**
   * Stores a release whose manifest the caller verified. The same app and version with the same bytes:
   * created false (a retried publish). 'exists' with other bytes; 'stale_sequence' when the sequence is
   * not above every stored one of that app.
   */
  add(
    r: { app: string; version: string; sequence: number; envelope: Buffer; publishedBy: string },
    now: number,
    audit?: AuditEntry,
  ): Promise<{ release: StoredRelease; created: boolean }>;
  get(id: number): Promise<StoredRelease | undefined>;
  /** "app@version", or a bare version when only one app has it ('ambiguous' when several do). */
  find(ref: string): Promise<StoredRelease | undefined>;
  /** The signed manifest, byte for byte as published. */
  envelope(id: number): Promise<Buffer | undefined>;
  nextSequence(app: string): Promise<number>;
  /** By app, then newest sequence first. */
  list(q: { limit: number; app?: string }): Promise<StoredRelease[]>;
}

// ---- rollouts, vessel targets, windows, directives: rollout-records.ts ----

export type {
  DirectiveRecords,
  RolloutMember,
  RolloutRecord,
  RolloutRecords,
  RolloutState,
  StoredDirective,
  VesselTarget,
  WindowRecord,
  WindowRecords,
} from './rollout-records.js';

// ---- telemetry ----

/** One record as stored, keyed by (vessel, batch epoch, seq). See telemetry-records.ts for the wire form. */
export type TelemetryRecord =
  | { kind: 'log'; seq: number; ts: number; service: string; level: string; line: string; bootId: string }
  | { kind: 'event'; seq: number; ts: number; type: string; data: string }
  | { kind: 'metric'; seq: number; ts: number; name: string; labels: Record<string, string>; value: number };

export interface TelemetryBatchMeta {
  /** The vessel outbox's epoch: (vessel, epoch, seq) names a record for good. */
  epoch: string;
  /** Records still queued on board after this batch. */
  backlog: number;
  /** The outbox's cumulative drop counters, per class. */
  drops: Record<string, { records: number; bytes: number }>;
}

export interface LogRecord {
  epoch: string;
  seq: number;
  service: string;
  level: string;
  line: string;
  /** Vessel time (ms); receivedAt is hub time. */
  at: number;
  receivedAt: number;
  bootId: string;
}
export interface EventRecord {
  id: number;
  epoch: string;
  seq: number;
  type: string;
  /** The event's JSON body, or the raw text when a vessel sent something that is not JSON. */
  data: unknown;
  at: number;
  receivedAt: number;
}
export interface MetricPoint {
  labels: Record<string, string>;
  value: number;
  at: number;
}
export interface TelemetryCounters {
  backlog: number;
  drops: Record<string, { records: number; bytes: number }>;
  recordsReceived: number;
  bytesReceived: number;
  lastBatchAt: number | null;
}
export interface LogQuery {
  service?: string;
  /** Vessel time (ms), since inclusive, until exclusive. */
  since?: number;
  until?: number;
  /** Words that must all occur (never query syntax: quotes, operators and NUL are just text). */
  grep?: string;
  limit: number;
}

export interface TelemetryRecords {
  /**
   * Stores a batch exactly once: a record whose (vessel, epoch, seq) is stored already counts as a
   * duplicate, whoever stored it and however often the batch is retried. Counters grow by what was
   * stored (records) and by `wireBytes` (bytes over the link, retries included); backlog and drops
   * become the batch's.
   */
  ingest(
    vesselId: string,
    batch: TelemetryBatchMeta,
    records: TelemetryRecord[],
    wireBytes: number,
    now: number,
  ): Promise<{ stored: number; duplicates: number }>;
  /** The newest `limit` matching lines, returned oldest first (vessel time, then seq). */
  logs(vesselId: string, q: LogQuery): Promise<LogRecord[]>;
  /** Newest first (by arrival); `before` (an id) pages back. */
  events(vesselId: string, q: { limit: number; before?: number }): Promise<EventRecord[]>;
  /** One metric's points at or after `since` (vessel time), oldest first. */
  metrics(vesselId: string, q: { name: string; since: number; limit: number }): Promise<MetricPoint[]>;
  counters(vesselId: string): Promise<TelemetryCounters | undefined>;
  /** Every vessel that has sent telemetry, by name. */
  fleetCounters(): Promise<(TelemetryCounters & { vesselId: string; vessel: string })[]>;
  /** Retention: deletes metric points received before the time; returns how many. */
  pruneMetrics(receivedBefore: number): Promise<number>;
}

// ---- packs ----

/** A fixed list of chunks for one vessel; its bytes are stable, so a cut download resumes at any byte. */
export interface PackRecord {
  id: string;
  vesselId: string;
  releaseId: number;
  digests: string[];
  length: number;
  createdAt: number;
}
export interface PackRecords {
  /** The id names the pack's contents: putting the same pack again changes nothing (created false). */
  put(p: Omit<PackRecord, 'createdAt'>, now: number): Promise<{ created: boolean }>;
  /** Only the pack of this vessel: another vessel's id is not found. */
  get(id: string, vesselId: string): Promise<PackRecord | undefined>;
}

// ---- chunks ----

/**
 * Content-addressed blobs: the brotli-compressed bytes of a chunk named by the sha256 of its raw content.
 * Bytes come back exactly as put, whole or by range, from any hub process (a pack resumed through
 * another hub yields the same bytes). Ranges are [start, end) in the compressed bytes.
 */
export interface HubChunkStore {
  has(digest: string): Promise<boolean>;
  /** The digests not stored, in the order given. */
  missing(digests: readonly string[]): Promise<string[]>;
  /** Stored (compressed) size, undefined when absent. */
  size(digest: string): Promise<number | undefined>;
  /** Sizes of those present. */
  sizes(digests: readonly string[]): Promise<Map<string, number>>;
  /**
   * Stores compressed bytes after checking they inflate to `rawSize` bytes with this digest (a ChunkError
   * otherwise, and nothing stored); false when it was present already.
   */
  put(digest: string, compressed: Buffer, rawSize: number): Promise<boolean>;
  /** 'chunk_missing' when absent. */
  read(digest: string): Promise<Buffer>;
  /** 'bad_range' unless 0 <= start <= end <= size. */
  readRange(digest: string, start: number, end: number): Promise<Buffer>;
  /** A stream of the bytes (or a range); missing chunks and bad ranges reject before any byte flows. */
  stream(digest: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Drop a chunk (found damaged): it is then simply missing. */
  remove(digest: string): Promise<void>;
}

// ---- backup policies

/** A signed backup policy as published: the hub keeps the envelope, it cannot sign one. */
export interface PolicyRecord {
  name: string;
  sequence: number;
  /** all, group:G, vessel:NAME, as signed in the policy. */
  targets: string[];
  publishedAt: number;
  publishedBy: string;
}
export interface PolicyRecords {
  /**
   * Stores a policy the caller verified. The same name and sequence with the same bytes: created false;
   * 'exists' with other bytes; 'stale_sequence' when the sequence is not above every stored one of that name.
   */
  publish(
    p: { name: string; sequence: number; targets: string[]; envelope: Buffer; publishedBy: string },
    now: number,
    audit?: AuditEntry,
  ): Promise<{ created: boolean }>;
  /** The newest sequence of each policy, by name. */
  list(): Promise<PolicyRecord[]>;
  /**
   * The envelopes a vessel should hold, by name: the newest of each policy whose targets match the vessel,
   * or whose older sequence did (so the vessel learns, signed, that the policy no longer names it).
   */
  forVessel(v: { name: string; groups: readonly string[] }): Promise<{ name: string; envelope: Buffer }[]>;
}

// ---- the hub's TLS trust, announced

/** A signed hub-tls announcement as published (the hub keeps the envelope; it cannot sign one). */
export interface HubTlsRecord {
  sequence: number;
  envelope: Buffer;
  publishedAt: number;
  publishedBy: string;
}
export interface HubTlsRecords {
  /**
   * Stores an announcement the caller verified. The same sequence with the same bytes: created false;
   * 'exists' with other bytes; 'stale_sequence' when the sequence is not above the newest stored.
   */
  publish(
    a: { sequence: number; envelope: Buffer; publishedBy: string },
    now: number,
    audit?: AuditEntry,
  ): Promise<{ created: boolean }>;
  /** The newest announcement: the one in force. */
  latest(): Promise<HubTlsRecord | undefined>;
}

// ---- backups ashore

export interface BackupAshore {
  vesselId: string;
  id: string;
  policy: string;
  policySequence: number;
  method: string;
  startedAt: number;
  finishedAt: number;
  bytes: number;
  sha256: string;
  rawBytes: number;
  rawSha256: string | null;
  /** The seal key id and the sealed header (base64) of a sealed backup. */
  seal: { keyId: string; header: string } | null;
  /** Chunk ids in order. */
  chunks: string[];
  receivedAt: number;
}
export type BackupAshoreSummary = Omit<BackupAshore, 'chunks'> & { chunkCount: number };

/** What the status page shows per vessel and policy: the last good backup on board (from events) and ashore. */
export interface BackupStateRecord {
  vesselId: string;
  vessel: string;
  policy: string;
  lastGood: { id: string; at: number } | null;
  lastAshore: { id: string; at: number } | null;
  /** A failed or missed schedule reported by the vessel, until a good backup clears it. */
  alarm: { kind: string; reason: string; since: number } | null;
}

export interface BackupRecords {
  /**
   * Records a backup whose chunks are all stored ('chunk_missing' naming the first absent one otherwise).
   * The same id with the same chunk list and checksum: created false; 'exists' with other contents.
   */
  put(b: Omit<BackupAshore, 'receivedAt'>, now: number): Promise<{ created: boolean }>;
  get(vesselId: string, id: string): Promise<BackupAshore | undefined>;
  /** Newest first (vessel start time, then id). */
  list(vesselId: string, q: { limit: number; policy?: string }): Promise<BackupAshoreSummary[]>;
  /**
   * The hub's own retention for one vessel and policy: keeps the newest `keep` and none older than
   * `maxAgeMs` (the newest is always kept); chunks no remaining backup of any vessel names are deleted
   * from the chunk store. Returns the ids removed and how many chunks went.
   */
  prune(
    vesselId: string,
    policy: string,
    keep: { count: number; maxAgeMs: number },
    now: number,
  ): Promise<{ removed: string[]; chunksRemoved: number }>;
  /** Notes a backup result a vessel reported (its backup.* events): last good, and alarms until cleared. */
  noteResult(
    vesselId: string,
    r: {
      policy: string;
      result: 'ok' | 'failed' | 'missed';
      id: string | null;
      at: number;
      reason?: string;
      /** A run that caught up missed slots: it clears a failure, not the missed alarm. */
      catchUp?: boolean;
    },
  ): Promise<void>;
  /** Every vessel's state per policy, by vessel name then policy (the status page's column). */
  states(): Promise<BackupStateRecord[]>;
}
