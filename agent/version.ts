/** Reported to the hub and shown by `tender --version`; bumped with each release of tender itself. */
export const AGENT_VERSION = '0.1.0';
