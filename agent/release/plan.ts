import { startOrder, type ServiceSpec } from '../../shared/protocol/release-spec.js';

/**
 * Plan as data, then act: planSwap works out every step of moving from one release to another as a list,
 * and swap.ts carries the list out, journaling each step. Same order as kamal-proxy: start the new colour,
 * gate it, flip the router, drain, stop the old one (kept for rollback).
 */
export interface ReleaseView {
  app: string;
  version: string;
  services: Record<string, ServiceSpec>;
}

export type Step =
  | { kind: 'start'; service: string; release: string; colour: Colour }
  | { kind: 'gate'; service: string; release: string }
  | { kind: 'stop'; service: string; release: string }
  | { kind: 'remove'; service: string; release: string }
  | { kind: 'flip'; release: string }
  | { kind: 'commit'; release: string }
  | { kind: 'drain'; ms: number }
  | { kind: 'prune' };

export type Colour = 'blue' | 'green';

export function otherColour(c: Colour | undefined): Colour {
  return c === 'blue' ? 'green' : 'blue';
}

export interface PlanOptions {
  /**
   * Leave the old release's blue-green services running after the flip (warm through the new release's
   * watch window, so a rollback then is a router flip); they are stopped when the window ends.
   */
  keepFrom?: boolean;
  /** Other containers of the app still running (a warm colour, an update cut short): stopped after the flip. */
  strays?: { service: string; release: string }[];
}

export function planSwap(
  from: ReleaseView | null,
  to: ReleaseView,
  liveColours: Record<string, Colour>,
  opts: PlanOptions = {},
): Step[] {
  const steps: Step[] = [];
  const stopped = new Set<string>();
  for (const name of startOrder(to.services)) {
    const svc = to.services[name]!;
    const running = from?.services[name];
    if (svc.strategy === 'recreate' && running) {
      // Cannot run twice (owns a volume): the old one stops before the new one starts.
      steps.push({ kind: 'stop', service: name, release: from!.version });
      stopped.add(name);
    }
    steps.push({ kind: 'start', service: name, release: to.version, colour: otherColour(liveColours[name]) });
    steps.push({ kind: 'gate', service: name, release: to.version });
  }
  steps.push({ kind: 'flip', release: to.version });
  steps.push({ kind: 'commit', release: to.version });
  if (from) {
    const drain = Math.max(
      0,
      ...Object.values(to.services)
        .filter((s) => s.ports.length > 0)
        .map((s) => s.drainMs),
    );
    if (drain > 0) steps.push({ kind: 'drain', ms: drain });
    for (const name of startOrder(from.services).reverse()) {
      if (stopped.has(name) || (opts.keepFrom && from.services[name]!.strategy === 'blue-green')) continue;
      steps.push({ kind: 'stop', service: name, release: from.version });
    }
  }
  for (const s of opts.strays ?? []) steps.push({ kind: 'stop', service: s.service, release: s.release });
  steps.push({ kind: 'prune' });
  return steps;
}

/**
 * The undo of an update that failed or was cut before its flip: remove what it started, start again what
 * it stopped, and point the router back at the old release. The old release never stopped serving through
 * the router, so this restores exactly one complete release.
 */
export function planUndo(from: ReleaseView | null, to: ReleaseView, forward: Step[]): Step[] {
  const undo: Step[] = [];
  for (const s of forward) {
    if (s.kind === 'start' && s.release === to.version)
      undo.push({ kind: 'remove', service: s.service, release: to.version });
  }
  if (from) {
    for (const name of startOrder(from.services)) {
      const wasStopped = forward.some((s) => s.kind === 'stop' && s.service === name && s.release === from.version);
      if (wasStopped) {
        undo.push({ kind: 'start', service: name, release: from.version, colour: 'blue' });
        undo.push({ kind: 'gate', service: name, release: from.version });
      }
    }
    undo.push({ kind: 'flip', release: from.version });
  } else {
    undo.push({ kind: 'flip', release: '' });
  }
  return undo;
}

export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'start':
    case 'gate':
    case 'stop':
    case 'remove':
      return `${s.kind} ${s.service}@${s.release}`;
    case 'flip':
    case 'commit':
      return `${s.kind} ${s.release || '(none)'}`;
    case 'drain':
      return `drain ${s.ms}ms`;
    case 'prune':
      return 'prune';
  }
}
