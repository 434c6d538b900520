import type { WireRecord } from '../../shared/protocol/telemetry-wire.js';
import { RequestValidationError } from './validate.js';

/** The times a vessel may claim for a record; see hub/limits.ts for the values and why. */
export interface TimeBounds {
  earliestMs: number;
  aheadMs: number;
}

/**
 * Vessel timestamps bounded at ingest (ATTACKS.md 39): a record claiming a time outside [earliest, hub now
 * + ahead] is stored at the hub's receipt time instead, so that one record (ts = 9e15 is past what a Date
 * can hold) can never make a log, event or metric view fail. The record is kept (dropping telemetry
 * loses what a broken clock was trying to say); the caller logs how many were bounded. Sequence numbers
 * past the safe integer range cannot name a record exactly: the batch is refused (400).
 */
export function boundRecords(records: WireRecord[], now: number, b: TimeBounds): { bounded: number } {
  const latest = now + b.aheadMs;
  let bounded = 0;
  for (const r of records) {
    if (!Number.isSafeInteger(r.seq))
      throw new RequestValidationError(`batch: sequence number ${r.seq} is out of range`);
    if (!Number.isSafeInteger(r.ts) || r.ts < b.earliestMs || r.ts > latest) {
      r.ts = now;
      bounded++;
    }
  }
  return { bounded };
}
