import { describe, expect, it } from 'vitest';
import { describeStep, planSwap, planUndo, type ReleaseView } from '../../agent/release/plan.js';
import type { ServiceSpec } from '../../shared/protocol/release-spec.js';

const svc = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  imageRef: 'x:1',
  imageId: `sha256:${'a'.repeat(64)}`,
  ports: [{ published: 80, target: 8080 }],
  environment: {},
  volumes: [],
  command: null,
  healthcheck: null,
  restart: 'unless-stopped',
  dependsOn: [],
  strategy: 'blue-green',
  gate: { type: 'http', path: '/health', port: 8080, timeoutMs: 10_000, successes: 1 },
  drainMs: 5_000,
  ...over,
});

const rel = (version: string, services: Record<string, ServiceSpec>): ReleaseView => ({
  app: 'sms',
  version,
  services,
});

describe('planSwap', () => {
  it('first install: start, gate, flip, commit, no drain or stop', () => {
    const steps = planSwap(null, rel('1', { web: svc() }), {});
    expect(steps.map(describeStep)).toEqual(['start web@1', 'gate web@1', 'flip 1', 'commit 1', 'prune']);
  });

  it('blue-green: the new colour starts and passes its gate before the flip; the old stops after the drain', () => {
    const steps = planSwap(rel('1', { web: svc() }), rel('2', { web: svc() }), { web: 'blue' });
    expect(steps.map(describeStep)).toEqual([
      'start web@2',
      'gate web@2',
      'flip 2',
      'commit 2',
      'drain 5000ms',
      'stop web@1',
      'prune',
    ]);
    expect(steps[0]).toMatchObject({ colour: 'green' });
  });

  it('recreate: the old one stops before the new one starts (it cannot run twice)', () => {
    const db = svc({ ports: [], strategy: 'recreate', gate: { type: 'tcp', port: 5432, timeoutMs: 1, successes: 1 } });
    const steps = planSwap(
      rel('1', { db, web: svc({ dependsOn: ['db'] }) }),
      rel('2', { db, web: svc({ dependsOn: ['db'] }) }),
      {},
    );
    expect(steps.map(describeStep)).toEqual([
      'stop db@1',
      'start db@2',
      'gate db@2',
      'start web@2',
      'gate web@2',
      'flip 2',
      'commit 2',
      'drain 5000ms',
      'stop web@1',
      'prune',
    ]);
  });

  it('undo before the flip removes what started, restarts what stopped, and points the router back', () => {
    const db = svc({ ports: [], strategy: 'recreate' });
    const from = rel('1', { db, web: svc() });
    const to = rel('2', { db, web: svc() });
    const forward = planSwap(from, to, {});
    const attempted = forward.slice(0, 3); // stop db@1, start db@2, gate db@2 (failed)
    expect(planUndo(from, to, attempted).map(describeStep)).toEqual([
      'remove db@2',
      'start db@1',
      'gate db@1',
      'flip 1',
    ]);
  });

  it('undo of a first install leaves no routes', () => {
    const to = rel('1', { web: svc() });
    expect(planUndo(null, to, planSwap(null, to, {}).slice(0, 2)).map(describeStep)).toEqual([
      'remove web@1',
      'flip (none)',
    ]);
  });
});
