/**
 * Media types and headers of the hub API. Each body layout has its own media type, so a reader of a
 * request knows which layout it holds without knowing the route.
 */
export const MEDIA = {
  json: 'application/json',
  /** A signed document (root, release manifest): a DSSE envelope, strict JSON, kept as exact bytes. */
  envelope: 'application/vnd.tender.envelope+json',
  /** A telemetry batch: columnar JSON (telemetry-wire.ts), sent with Content-Encoding gzip or br. */
  telemetry: 'application/vnd.tender.telemetry+json',
  /** Chunks from the hub to a vessel: entries of [digest][compressed size][bytes] (pack.ts, download). */
  pack: 'application/vnd.tender.pack',
  /** Chunks from the publisher to the hub: entries of [digest][raw size][compressed size][bytes] (pack.ts, upload). */
  uploadPack: 'application/vnd.tender.upload-pack',
  /** Prometheus text exposition format (version 0.0.4). */
  /** A release bundle for a USB stick: magic, then header, manifest, chunk and end frames (bundle.ts). */
  bundle: 'application/vnd.tender.bundle',
  prometheus: 'text/plain',
  /** A backup ashore as downloaded: the dump itself, or for a sealed one the sealed file (backup-ashore.ts). */
  backup: 'application/vnd.tender.backup',
  html: 'text/html',
} as const;

/** Header names, lower case as node hands them over. */
export const HEADER = {
  /** sha256 (hex) of a vessel's request body; the vessel's signature covers it (vessel-auth.ts). */
  bodyDigest: 'x-tender-content-sha256',
  /** The id and length of a pack whose bytes ride in the answer that created it. */
  packId: 'tender-pack-id',
  packLength: 'tender-pack-length',
  /**
   * On a pack request: the delta formats the vessel applies ("1,2", solid.ts). A header, not a body field,
   * so an older hub (strict about bodies) ignores it and sends format 1, which every agent applies.
   */
  deltaFormats: 'tender-delta-formats',
  /**
   * On the request for a release's configs and layer indexes: "groups" asks the hub to append, after them,
   * the solid groups the vessel will need next (judged from the indexes it holds), so the content needs no
   * second round trip. A header, so an older hub ignores it and the vessel asks for the content as before.
   */
  packAhead: 'tender-pack-ahead',
} as const;

/** The error body every route answers with on a 4xx or 5xx. */
export interface ErrorBody {
  error: string;
  message: string;
}
