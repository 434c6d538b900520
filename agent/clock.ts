/**
 * The vessel's clock as the agent reads it. TENDER_CLOCK_OFFSET_MS shifts it for the clock-jump tests
 * (a ship's clock set back a day); unset in production.
 */
export function vesselNow(): number {
  const off = process.env.TENDER_CLOCK_OFFSET_MS;
  return off ? Date.now() + Number(off) : Date.now();
}

/**
 * The corrected clock: the vessel's clock plus the hub's offset from it as last measured (its Date
 * header), so a ship's clock hours off still honours windows, expiries and directives. With the link down
 * the last offset holds; a vessel that never reached the hub reads its own clock.
 */
export function correctedNow(skewMs: number | undefined): number {
  return vesselNow() + (skewMs ?? 0);
}
