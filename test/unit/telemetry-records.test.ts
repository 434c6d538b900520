import { describe, expect, it } from 'vitest';
import { telemetryRecordsFromWire } from '../../hub/store/telemetry-records.js';
import type { WireRecord } from '../../shared/protocol/telemetry-wire.js';

const wire = (r: Partial<WireRecord>): WireRecord => ({
  seq: 1,
  ts: 1000,
  cls: 1,
  kind: 'log',
  source: 'portal',
  body: '',
  bootId: 'b1',
  ...r,
});

describe('telemetry records from the wire', () => {
  it('turns logs, events and metrics into the records every store keeps', () => {
    expect(
      telemetryRecordsFromWire([
        wire({ seq: 1, cls: 2, body: 'disk low' }),
        wire({ seq: 2, cls: 4, kind: 'event', source: 'deploy', body: '{"r":"sms@1"}' }),
        wire({ seq: 3, cls: 3, kind: 'metric', source: 'cpu', body: '{"v":1.5,"l":{"core":"0"}}' }),
      ]),
    ).toEqual([
      { kind: 'log', seq: 1, ts: 1000, service: 'portal', level: 'warn', line: 'disk low', bootId: 'b1' },
      { kind: 'event', seq: 2, ts: 1000, type: 'deploy', data: '{"r":"sms@1"}' },
      { kind: 'metric', seq: 3, ts: 1000, name: 'cpu', labels: { core: '0' }, value: 1.5 },
    ]);
  });

  it('names the outbox classes as levels, an unknown class as info', () => {
    const levels = [0, 1, 2, 3, 4, 9].map(
      (cls) => (telemetryRecordsFromWire([wire({ cls })])[0] as { level: string }).level,
    );
    expect(levels).toEqual(['debug', 'info', 'warn', 'metric', 'event', 'info']);
  });

  it('keeps a metric whose body is odd as 0 without labels instead of refusing the batch', () => {
    const bodies = [
      'not json',
      'null',
      '[1,2]',
      '{"v":"7"}',
      '{"v":1e400}',
      '{"v":2,"l":[1]}',
      '{"v":3,"l":{"a":1,"b":{}}}',
    ];
    expect(
      telemetryRecordsFromWire(bodies.map((body) => wire({ kind: 'metric', source: 'm', body }))).map((r) =>
        r.kind === 'metric' ? [r.value, r.labels] : undefined,
      ),
    ).toEqual([
      [0, {}],
      [0, {}],
      [0, {}],
      [0, {}],
      [0, {}],
      [2, {}],
      [3, { a: '1' }],
    ]);
  });
});
