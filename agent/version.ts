/**
 * Reported to the hub and shown by `tender --version`; bumped with each release of tender itself. A build
 * of the single executable may stamp another (`TENDER_BUILD_VERSION=0.2.0 bash installer/build-sea.sh`):
 * esbuild replaces the expression below with the string, so the version lives in the executable's bytes.
 */
export const AGENT_VERSION: string = process.env.TENDER_BUILD_VERSION_STAMP || '0.1.0';
