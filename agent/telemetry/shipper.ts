import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { errorMessage } from '../../shared/errors.js';
import { encodeBatch } from '../../shared/protocol/telemetry-wire.js';
import { backoffDelayMs, sleep, Wakeup } from '../backoff.js';
import type { HubClient } from '../hub-client.js';
import type { Outbox } from './outbox.js';

// Thousands of records per batch: one 700 ms round trip per batch, not per record. At 256 kbit/s a full
// batch of realistic logs is ~280 KB on the wire, ~9 s: the round trip between batches costs under 10 %.
export const MAX_BATCH_RECORDS = 20_000;
// Raw bytes per batch before compression; a few hundred KB on the wire.
export const MAX_BATCH_RAW_BYTES = 8 * 1024 * 1024;
// A batch this small is live data: gzip is quick; larger batches are backlog and get brotli.
const LIVE_BATCH_RECORDS = 200;
// Brotli quality for backlog: 9 is most of quality 11's gain at a fraction of the CPU on a small server.
const BROTLI_QUALITY = 9;
// With nothing queued, look again this often (new lines arrive in groups every 250 ms).
const IDLE_MS = 1_000;
const BACKOFF_BASE_MS = 2_000;
// A batch may take this long over a slow link: 1 MB at 256 kbit/s is about 33 s.
const SHIP_TIMEOUT_MS = 5 * 60_000;

export function compressBatch(json: Buffer, records: number): { body: Buffer; encoding: 'gzip' | 'br' } {
  if (records <= LIVE_BATCH_RECORDS) return { body: gzipSync(json, { level: 6 }), encoding: 'gzip' };
  return {
    body: brotliCompressSync(json, {
      params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: json.byteLength },
    }),
    encoding: 'br',
  };
}

/** Bytes per second for telemetry, measured over the time since the last send. */
function makeThrottle(bytesPerSecond: number) {
  let nextFree = 0;
  return async (bytes: number, signal: AbortSignal) => {
    if (bytesPerSecond <= 0) return;
    const now = Date.now();
    const start = Math.max(now, nextFree);
    nextFree = start + (bytes / bytesPerSecond) * 1000;
    if (start > now) await sleep(start - now, signal);
  };
}

export interface ShipStats {
  batches: number;
  records: number;
  wireBytes: number;
}

/**
 * Ship the outbox to the hub: large compressed batches, each record deleted only after the hub has
 * acknowledged it; a batch the hub calls malformed goes to the dead-letter table instead of blocking the
 * queue; everything else is retried with backoff and jitter (capped at the agent's maxBackoffSeconds) for
 * as long as it takes, and at once when LINKUP rings (the hub answered the sync loop again).
 */
export async function shipLoop(opts: {
  client: () => HubClient | undefined;
  outbox: Outbox;
  vesselName: string;
  log: Logger;
  signal: AbortSignal;
  maxBytesPerSecond: number;
  maxBackoffMs: number;
  /** First retry delay (default 2 s); doubles per failure up to maxBackoffMs. */
  backoffBaseMs?: number;
  linkUp?: Wakeup;
  stats?: ShipStats;
}): Promise<void> {
  const linkUp = opts.linkUp ?? new Wakeup();
  const throttle = makeThrottle(opts.maxBytesPerSecond);
  let maxRecords = MAX_BATCH_RECORDS;
  let failures = 0;
  while (!opts.signal.aborted) {
    const client = opts.client();
    const records = client ? opts.outbox.nextBatch(maxRecords, MAX_BATCH_RAW_BYTES) : [];
    if (records.length === 0) {
      await sleep(IDLE_MS, opts.signal);
      continue;
    }
    const st = opts.outbox.stats();
    const drops = Object.fromEntries(Object.entries(st.drops).filter(([, d]) => d.records > 0));
    const json = Buffer.from(
      JSON.stringify(encodeBatch(opts.outbox.epoch, records, drops, Math.max(0, st.records - records.length))),
    );
    const { body, encoding } = compressBatch(json, records.length);
    await throttle(body.byteLength, opts.signal);
    const seqs = records.map((r) => r.seq);
    try {
      const res = await client!.postTelemetry(opts.vesselName, body, encoding, SHIP_TIMEOUT_MS);
      if (res.status >= 200 && res.status < 300) {
        opts.outbox.ack(seqs);
        failures = 0;
        maxRecords = Math.min(MAX_BATCH_RECORDS, maxRecords * 2);
        if (opts.stats) {
          opts.stats.batches++;
          opts.stats.records += records.length;
          opts.stats.wireBytes += body.byteLength;
        }
        continue;
      }
      const message = res.body.toString('utf8').slice(0, 300);
      if (res.status === 413 && maxRecords > 1) {
        maxRecords = Math.max(1, Math.floor(records.length / 2));
        continue;
      }
      if (res.status === 400 || (res.status === 413 && records.length === 1)) {
        opts.outbox.deadLetter(seqs, `hub answered ${res.status}: ${message}`);
        opts.log.warn(
          { records: seqs.length, reason: message },
          'telemetry batch refused by the hub; moved to the dead-letter table',
        );
        continue;
      }
      if (res.status === 429) {
        await sleep(Number(res.headers.get('retry-after') ?? 5) * 1000, opts.signal);
        continue;
      }
      throw new Error(`hub answered ${res.status}: ${message}`);
    } catch (err) {
      failures++;
      if (failures === 1)
        opts.log.info({ reason: errorMessage(err), queued: st.records }, 'telemetry not shipped; will retry');
      const rung = linkUp.count;
      await linkUp.sleep(
        backoffDelayMs(failures, opts.backoffBaseMs ?? BACKOFF_BASE_MS, opts.maxBackoffMs),
        opts.signal,
      );
      // Woken because the hub answers again: this outage is over, and so is its backoff.
      if (linkUp.count !== rung) failures = 0;
    }
  }
}
