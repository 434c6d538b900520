import { promisify } from 'node:util';
import { brotliDecompress, gunzip } from 'node:zlib';
import { TenderError } from '../../shared/errors.js';
import { RequestValidationError } from './validate.js';

export class TelemetryIngestError extends TenderError {}

const gunzipAsync = promisify(gunzip);
const brotliAsync = promisify(brotliDecompress);

// Vessels the budget remembers at once; past it the oldest window is forgotten (a fresh budget for it).
const MAX_TRACKED_VESSELS = 100_000;
const WINDOW_MS = 60_000;

/**
 * How many inflated bytes each vessel may have the hub decompress and parse per minute. A 297-byte brotli
 * batch can inflate to 59 MB, so counting batches or wire bytes stops nothing; what costs the hub CPU
 * (and stalls every other request while the JSON is parsed) is the inflated size. One process keeps its
 * own windows: with several hubs a vessel gets this budget from each.
 */
export class InflateBudget {
  private readonly windows = new Map<string, { start: number; used: number }>();

  constructor(
    readonly bytesPerMinute: number,
    private readonly now: () => number,
  ) {}

  private window(vesselId: string) {
    const t = this.now();
    let w = this.windows.get(vesselId);
    if (!w || t - w.start >= WINDOW_MS) {
      this.windows.delete(vesselId);
      w = { start: t, used: 0 };
      if (this.windows.size >= MAX_TRACKED_VESSELS) this.windows.delete(this.windows.keys().next().value!);
    }
    // Re-inserted so the map stays ordered by last use.
    this.windows.set(vesselId, w);
    return w;
  }

  /** Seconds until the vessel's budget refills; 0 when some is left. */
  retryAfter(vesselId: string): number {
    const w = this.window(vesselId);
    return w.used < this.bytesPerMinute ? 0 : Math.max(1, Math.ceil((w.start + WINDOW_MS - this.now()) / 1000));
  }

  remaining(vesselId: string): number {
    const w = this.window(vesselId);
    return Math.max(0, this.bytesPerMinute - w.used);
  }

  charge(vesselId: string, bytes: number): void {
    this.window(vesselId).used += bytes;
  }
}

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
  const wait = budget.retryAfter(vesselId);
  if (wait > 0) throw budgetExceeded(wait, budget.bytesPerMinute);
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
      budget.charge(vesselId, maxBytes);
      throw new TelemetryIngestError(`batch inflates past the ${maxBytes}-byte limit`, 'too_large', 1, 413);
    }
    if (err instanceof TenderError) throw err;
    throw new RequestValidationError(`body is not valid ${encoding}: ${(err as Error).message}`);
  }
  const left = budget.remaining(vesselId);
  budget.charge(vesselId, out.byteLength);
  if (out.byteLength > left) throw budgetExceeded(budget.retryAfter(vesselId), budget.bytesPerMinute);
  return out;
}
