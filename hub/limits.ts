/** Every limit of the hub's HTTP edge, named once, with the reason for its value. */

// Control bodies (enrolment, status reports, ops commands) are a few KB; 64 KB is generous.
export const DEFAULT_BODY_LIMIT = 64 * 1024;
// A signed root with 64 keys is under 16 KB; a megabyte leaves room and still refuses junk at once.
export const ROOT_BODY_LIMIT = 1024 * 1024;
// Request bodies never nest deeply; refusing deep nesting early keeps the parser's work bounded.
export const MAX_JSON_DEPTH = 32;
// A client gets this long to send its headers: several satellite round trips, not a slowloris' minutes.
export const HEADERS_TIMEOUT_MS = 15_000;
// A whole request must arrive in this time. Long transfers use resumable ranges, not one long request.
export const REQUEST_TIMEOUT_MS = 120_000;
// A TLS handshake is two satellite round trips; one that has not finished in this time is stalled (or
// someone holding sockets open), and the socket is dropped.
export const TLS_HANDSHAKE_TIMEOUT_MS = 20_000;
// Idle keep-alive connections: a vessel polling every minute reuses its connection; idle ones close.
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
// How often node checks the two timeouts above; the default (30 s) lets a slow client overstay.
export const TIMEOUT_CHECK_INTERVAL_MS = 1_000;
// One address (a ship behind NAT carries one agent; an office carries a few ops laptops).
export const MAX_CONNECTIONS_PER_ADDRESS = 64;
export const MAX_CONNECTIONS = 20_000;
// Enrolment is unauthenticated: a few attempts per minute per address stops token guessing.
export const ENROL_ATTEMPTS_PER_MINUTE = 10;
// Page size caps for list routes.
export const MAX_LIST_LIMIT = 1000;
// Vessel timestamps before this are a clock that was never set (or an attack); stored at receipt time.
export const TELEMETRY_EARLIEST_MS = Date.UTC(2000, 0, 1);
// Or further ahead of the hub's clock than this: a ship's clock set years forward is still believed
// (ATTACKS.md 21 is the vessel's to raise), one claiming the year 287,000 (ts = 9e15) is not.
export const TELEMETRY_AHEAD_MS = 10 * 366 * 24 * 3600 * 1000;
// Decompressed bytes allowed per batch: a gzip or brotli bomb stops here. The agent sends at most 8 MB of
// records per batch and halves a batch answered 413; parsing 16 MB of JSON costs the event loop ~0.3-1 s.
export const TELEMETRY_MAX_DECOMPRESSED = 16 * 1024 * 1024;
// Inflated bytes per vessel per minute the hub decompresses and parses (a 297-byte brotli batch inflates
// to 59 MB: counting batches stops nothing). A ship draining a week's backlog ships ~1 MB/min over
// satellite; past this it is told to retry after the minute.
export const TELEMETRY_INFLATED_BYTES_PER_MINUTE = 32 * 1024 * 1024;
// Solid groups of the chunks a release adds are compressed once per (from, to) release pair and sent to
// every vessel holding `from`: brotli's best (quality 11) is worth its CPU. Tests lower it.
export const SOLID_BROTLI_QUALITY = 11;
// A pack request waits this long for a release's solid groups still being computed, then is served per
// chunk: under the agent's 60 s stall limit.
export const PACK_PLAN_WAIT_MS = 20_000;
// A publish waits this long for the release's solid groups before it answers (the rest carries on in the
// background): under the ops client's 30 s timeout.
export const PUBLISH_PLAN_WAIT_MS = 15_000;
