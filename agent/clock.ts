/**
 * The vessel's clock as the agent reads it. TENDER_CLOCK_OFFSET_MS shifts it for the clock-jump tests
 * (a ship's clock set back a day); unset in production.
 */
export function vesselNow(): number {
  const off = process.env.TENDER_CLOCK_OFFSET_MS;
  return off ? Date.now() + Number(off) : Date.now();
}
