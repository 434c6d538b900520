import { readFileSync } from 'node:fs';

/** The systemd units of systemd/, in the order they start. */
export const UNIT_NAMES = ['tender-router.service', 'tender-agent.service', 'tender-hub.service'] as const;
export type UnitName = (typeof UNIT_NAMES)[number];

/**
 * A unit file's text. Run from the sources it is read from systemd/; in the single executable
 * installer/bundle.mjs gives this function the texts themselves, so nothing is read beside it.
 */
export function unitText(name: UnitName): string {
  if (typeof TENDER_BUNDLED_UNITS !== 'undefined') return TENDER_BUNDLED_UNITS[name];
  return readFileSync(new URL(`../systemd/${name}`, import.meta.url), 'utf8');
}

declare const TENDER_BUNDLED_UNITS: Record<UnitName, string> | undefined;
