// A vessel counts as active when it has been heard from this recently (the definition).
export const ACTIVE_WINDOW_MS = 15 * 60 * 1000;
