import { className, type WireRecord } from '../../shared/protocol/telemetry-wire.js';
import type { TelemetryRecord } from './hub-store.js';

/**
 * Decoded wire records as the store keeps them, the same for every engine: a log's source is its
 * service, an event's its type, a metric's its name; a metric body that is not {"v": number, "l": {...}}
 * is stored as 0 with no labels rather than refused (one odd record must not cost the batch); label
 * values are kept as text.
 */
export function telemetryRecordsFromWire(records: readonly WireRecord[]): TelemetryRecord[] {
  return records.map((r): TelemetryRecord => {
    if (r.kind === 'log')
      return {
        kind: 'log',
        seq: r.seq,
        ts: r.ts,
        service: r.source,
        // The class (cls on the wire) as its name.
        level: className(r.cls),
        line: r.body,
        bootId: r.bootId,
      };
    if (r.kind === 'event') return { kind: 'event', seq: r.seq, ts: r.ts, type: r.source, data: r.body };
    const m = metricBody(r.body);
    return { kind: 'metric', seq: r.seq, ts: r.ts, name: r.source, labels: m.l, value: m.v };
  });
}

function metricBody(body: string): { v: number; l: Record<string, string> } {
  try {
    const m = JSON.parse(body) as { v?: unknown; l?: unknown };
    const v = typeof m.v === 'number' && Number.isFinite(m.v) ? m.v : 0;
    const l =
      m.l && typeof m.l === 'object' && !Array.isArray(m.l)
        ? Object.fromEntries(
            Object.entries(m.l)
              .filter(([, x]) => ['string', 'number', 'boolean'].includes(typeof x))
              .map(([k, x]) => [k, String(x)]),
          )
        : {};
    return { v, l };
  } catch {
    return { v: 0, l: {} };
  }
}
