import { promisify } from 'node:util';
import { brotliDecompress, gunzip } from 'node:zlib';
import { TenderError } from '../../shared/errors.js';
import type { SharedCounterRecords } from '../store/hub-store.js';
import { RequestValidationError } from './validate.js';

export class TelemetryIngestError extends TenderError {}

const gunzipAsync = promisify(gunzip);
const brotliAsync = promisify(brotliDecompress);

// Vessels the in-memory budget remembers at once; past it the oldest window is forgotten (a fresh budget).
const MAX_TRACKED_VESSELS = 100_000;
const WINDOW_MS = 60_000;

/** What a vessel has used of its budget in the current window, and when the window ends. */
export interface BudgetUse {
  used: number;
  resetAt: number;
}

/**
 * How many inflated bytes each vessel may have the hub decompress and parse per minute. A 297-byte brotli
 * batch can inflate to 59 MB, so counting batches or wire bytes stops nothing; what costs the hub CPU
 * (and stalls every other request while the JSON is parsed) is the inflated size. The embedded hub keeps
 * its windows in memory; hubs on a shared store count in its shared counters, so a vessel gets one budget
 * however many hubs stand behind the balancer.
 */
export interface InflateBudget {
  readonly bytesPerMinute: number;
  now(): number;
  /** Adds `bytes` (0: only looks) to the vessel's window; returns the use so far. */
  charge(vesselId: string, bytes: number): Promise<BudgetUse>;
}

export function memoryInflateBudget(bytesPerMinute: number, now: () => number): InflateBudget {
  const windows = new Map<string, { start: number; used: number }>();
  return {
    bytesPerMinute,
    now,
    async charge(vesselId, bytes) {
      const t = now();
      let w = windows.get(vesselId);
      if (!w || t - w.start >= WINDOW_MS) {
        windows.delete(vesselId);
        w = { start: t, used: 0 };
        if (windows.size >= MAX_TRACKED_VESSELS) windows.delete(windows.keys().next().value!);
      }
      // Re-inserted so the map stays ordered by last use.
      windows.set(vesselId, w);
      w.used += bytes;
      return { used: w.used, resetAt: w.start + WINDOW_MS };
    },
  };
}

export function sharedInflateBudget(
  counters: SharedCounterRecords,
  bytesPerMinute: number,
  now: () => number,
): InflateBudget {
  return {
    bytesPerMinute,
    now,
    async charge(vesselId, bytes) {
      const r = await counters.hit(`inflate:${vesselId}`, WINDOW_MS, now(), bytes);
      return { used: r.count, resetAt: r.resetAt };
    },
  };
}

const secondsUntil = (budget: InflateBudget, use: BudgetUse) =>
  Math.max(1, Math.ceil((use.resetAt - budget.now()) / 1000));

export function budgetExceeded(seconds: number, limit: number): TelemetryIngestError {
  return Object.assign(
    new TelemetryIngestError(
      `telemetry over the ${limit}-byte per minute inflated budget of this vessel; retry in ${seconds}s`,
      'rate_limited',
      1,
      429,
    ),
    { retryAfter: seconds },
  );
}

/**
 * Inflate a batch off the event loop (zlib runs on the thread pool), stopping at `maxBytes`, and charge
 * what was inflated to the vessel's budget. Over the per-batch cap: 413 (the agent halves its batch). Over
 * what is left of the minute's budget: 429 with Retry-After (the agent waits; a 413 would make it split
 * a batch that is fine, down to dead-lettering single records).
 */
export async function inflateBatch(
  body: Buffer,
  encoding: string | undefined,
  maxBytes: number,
  budget: InflateBudget,
  vesselId: string,
): Promise<Buffer> {
  const before = await budget.charge(vesselId, 0);
  if (before.used >= budget.bytesPerMinute) throw budgetExceeded(secondsUntil(budget, before), budget.bytesPerMinute);
  let out: Buffer;
  try {
    if (!encoding || encoding === 'identity') {
      if (body.byteLength > maxBytes) throw new RangeError('too large');
      out = body;
    } else if (encoding === 'gzip') {
      out = await gunzipAsync(body, { maxOutputLength: maxBytes });
    } else if (encoding === 'br') {
      out = await brotliAsync(body, { maxOutputLength: maxBytes });
    } else {
      throw new TelemetryIngestError(
        `content-encoding ${encoding} is not supported (gzip, br)`,
        'unsupported_media_type',
        1,
        415,
      );
    }
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      await budget.charge(vesselId, maxBytes);
      throw new TelemetryIngestError(`batch inflates past the ${maxBytes}-byte limit`, 'too_large', 1, 413);
    }
    if (err instanceof TenderError) throw err;
    throw new RequestValidationError(`body is not valid ${encoding}: ${(err as Error).message}`);
  }
  const after = await budget.charge(vesselId, out.byteLength);
  if (after.used > budget.bytesPerMinute) throw budgetExceeded(secondsUntil(budget, after), budget.bytesPerMinute);
  return out;
}
