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
