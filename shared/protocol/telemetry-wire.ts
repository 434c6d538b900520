import { z } from 'zod';

/**
 * A telemetry batch on the wire, columnar so that compression sees like next to like: sequence numbers
 * and timestamps as deltas, sources as a dictionary, bodies in one column. Every record is identified by
 * (vessel, outbox epoch, seq), which is what makes a retried batch store once at the hub.
 */
export const KIND_CODES = { log: 'l', metric: 'm', event: 'e' } as const;

/**
 * Record classes by rank: the outbox drops the lowest first when full, and the hub stores a log line's
 * class name as its level. A batch carries the rank (`cls`); drop counters are keyed by name.
 */
export const CLASS_NAMES = ['debug', 'info', 'warn', 'metric', 'event'] as const;
export type ClassName = (typeof CLASS_NAMES)[number];
export const CLASS = { debug: 0, info: 1, warn: 2, metric: 3, event: 4 } as const satisfies Record<ClassName, number>;
export type RecordClass = (typeof CLASS)[ClassName];

/** The class name of a rank as it arrived (an unknown rank reads as info, so one odd record stores). */
export function className(cls: number): ClassName {
  return CLASS_NAMES[cls] ?? 'info';
}

export const telemetryBatchSchema = z.strictObject({
  epoch: z.string().regex(/^[0-9a-f]{16}$/),
  /** First sequence number; `seq` holds the deltas from the previous record (first delta 0). */
  seq0: z.number().int().min(0),
  seq: z.array(z.number().int().min(0)).max(100_000),
  /** Vessel time of the first record (ms); `ts` holds deltas. */
  ts0: z.number().int(),
  ts: z.array(z.number().int()).max(100_000),
  cls: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(CLASS_NAMES.length - 1),
    )
    .max(100_000),
  kind: z.array(z.enum(['l', 'm', 'e'])).max(100_000),
  sources: z.array(z.string().max(256)).max(10_000),
  src: z.array(z.number().int().min(0)).max(100_000),
  body: z.array(z.string().max(64 * 1024)).max(100_000),
  boots: z.array(z.string().max(64)).max(100),
  boot: z.array(z.number().int().min(0)).max(100_000),
  /** Cumulative drop counters of the outbox, per class name. */
  drops: z.partialRecord(
    z.enum(CLASS_NAMES),
    z.strictObject({ records: z.number().int().min(0), bytes: z.number().int().min(0) }),
  ),
  /** Records still queued on board after this batch. */
  backlog: z.number().int().min(0),
});
export type TelemetryBatch = z.infer<typeof telemetryBatchSchema>;

export interface WireRecord {
  seq: number;
  ts: number;
  cls: number;
  kind: 'log' | 'metric' | 'event';
  source: string;
  body: string;
  bootId: string;
}

export function encodeBatch(
  epoch: string,
  records: WireRecord[],
  drops: TelemetryBatch['drops'],
  backlog: number,
): TelemetryBatch {
  const sources: string[] = [];
  const sourceIdx = new Map<string, number>();
  const boots: string[] = [];
  const bootIdx = new Map<string, number>();
  const b: TelemetryBatch = {
    epoch,
    seq0: records[0]?.seq ?? 0,
    seq: [],
    ts0: records[0]?.ts ?? 0,
    ts: [],
    cls: [],
    kind: [],
    sources,
    src: [],
    body: [],
    boots,
    boot: [],
    drops,
    backlog,
  };
  let prevSeq = b.seq0;
  let prevTs = b.ts0;
  for (const r of records) {
    b.seq.push(r.seq - prevSeq);
    prevSeq = r.seq;
    b.ts.push(r.ts - prevTs);
    prevTs = r.ts;
    b.cls.push(r.cls);
    b.kind.push(KIND_CODES[r.kind]);
    let si = sourceIdx.get(r.source);
    if (si === undefined) {
      si = sources.push(r.source) - 1;
      sourceIdx.set(r.source, si);
    }
    b.src.push(si);
    let bi = bootIdx.get(r.bootId);
    if (bi === undefined) {
      bi = boots.push(r.bootId) - 1;
      bootIdx.set(r.bootId, bi);
    }
    b.boot.push(bi);
    b.body.push(r.body);
  }
  return b;
}

export function decodeBatch(b: TelemetryBatch): WireRecord[] {
  const n = b.seq.length;
  if ([b.ts, b.cls, b.kind, b.src, b.body, b.boot].some((col) => col.length !== n))
    throw new Error('columns differ in length');
  const kinds = { l: 'log', m: 'metric', e: 'event' } as const;
  const out: WireRecord[] = [];
  let seq = b.seq0;
  let ts = b.ts0;
  for (let i = 0; i < n; i++) {
    seq += b.seq[i]!;
    ts += b.ts[i]!;
    const source = b.sources[b.src[i]!];
    const bootId = b.boots[b.boot[i]!];
    if (source === undefined || bootId === undefined) throw new Error(`record ${i} points outside the dictionary`);
    out.push({ seq, ts, cls: b.cls[i]!, kind: kinds[b.kind[i]!], source, body: b.body[i]!, bootId });
  }
  return out;
}
