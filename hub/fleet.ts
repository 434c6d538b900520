// A vessel counts as active when it has been heard from this recently (the definition).
export const ACTIVE_WINDOW_MS = 15 * 60 * 1000;
// Contact older than these is stale, then offline: on the status page and in tender_fleet_vessels.
export const STALE_AFTER_MS = 5 * 60_000;
export const OFFLINE_AFTER_MS = 15 * 60_000;
