import { connect } from 'node:net';
import { TenderError } from '../../shared/errors.js';
import type { ContainerInfo } from '../../shared/docker.js';
import type { GateSpec } from '../../shared/protocol/release-spec.js';

export class HealthGateError extends TenderError {}

/** A wait cut short on purpose (a crew rollback preempting an update), not a failure of what it waited for. */
export class PreemptedError extends TenderError {}

// Probe often enough that a healthy service passes within a second or two of being ready.
const PROBE_INTERVAL_MS = 500;
// One probe may take this long before it counts as a failure.
const PROBE_TIMEOUT_MS = 2_000;

export interface GateTarget {
  service: string;
  release: string;
  gate: GateSpec;
  inspect(): Promise<ContainerInfo | undefined>;
  /** Time between probes; default 500 ms (a release that served before is probed more often). */
  intervalMs?: number;
  /** Aborted: the wait ends at once with a PreemptedError carrying the abort's reason. */
  signal?: AbortSignal;
}

/** Sleep `ms`, or less when the signal aborts (then a PreemptedError with its reason). */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = () => reject(new PreemptedError(String(signal?.reason ?? 'preempted')));
    if (signal?.aborted) return fail();
    const onAbort = () => (clearTimeout(t), fail());
    const t = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One probe of the gate: undefined when healthy, else why not. */
export async function probe(t: GateTarget, info: ContainerInfo): Promise<string | undefined> {
  const g = t.gate;
  switch (g.type) {
    case 'none':
      return undefined;
    case 'docker':
      return info.health === 'healthy' ? undefined : `docker health ${info.health}`;
    case 'tcp': {
      const port = info.ports[g.port];
      if (!port) return `port ${g.port} not published`;
      return tcpProbe(port);
    }
    case 'http': {
      const port = info.ports[g.port];
      if (!port) return `port ${g.port} not published`;
      try {
        const res = await fetch(`http://127.0.0.1:${port}${g.path}`, {
          signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
          redirect: 'manual',
        });
        await res.arrayBuffer();
        return res.status >= 200 && res.status < 400 ? undefined : `HTTP ${res.status} from ${g.path}`;
      } catch (err) {
        return `GET ${g.path}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`;
      }
    }
  }
}

function tcpProbe(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => (s.destroy(), resolve('tcp connect timed out')), PROBE_TIMEOUT_MS);
    s.once('connect', () => (clearTimeout(t), s.destroy(), resolve(undefined)));
    s.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(t), resolve(`tcp ${e.code ?? e.message}`)));
  });
}

function timeoutOf(g: GateSpec): number {
  return g.type === 'none' ? 0 : g.timeoutMs;
}

function successesOf(g: GateSpec): number {
  return g.type === 'http' || g.type === 'tcp' ? g.successes : 1;
}

/**
 * Wait until the new colour passes its gate, within the gate's timeout. A container that exits fails at
 * once: no point waiting out the deadline for a process that is gone.
 */
export async function waitHealthy(t: GateTarget): Promise<void> {
  const deadline = Date.now() + timeoutOf(t.gate);
  const need = successesOf(t.gate);
  let ok = 0;
  let last = 'not probed yet';
  for (;;) {
    if (t.signal?.aborted) throw new PreemptedError(String(t.signal.reason ?? 'preempted'));
    const info = await t.inspect();
    if (!info) throw new HealthGateError(`${t.service}@${t.release}: container is gone`);
    if (!info.running && info.status !== 'restarting') {
      throw new HealthGateError(
        `${t.service}@${t.release} failed its health gate: container ${info.status} with exit code ${info.exitCode}`,
      );
    }
    if (info.health === 'unhealthy' && t.gate.type === 'docker') {
      throw new HealthGateError(`${t.service}@${t.release} failed its health gate: docker reports unhealthy`);
    }
    const why = info.running ? await probe(t, info) : 'restarting';
    if (why === undefined) {
      if (++ok >= need) return;
    } else {
      ok = 0;
      last = why;
    }
    if (Date.now() >= deadline) {
      throw new HealthGateError(
        `${t.service}@${t.release} failed to become healthy (${Math.round(timeoutOf(t.gate) / 1000)}s): ${last}`,
      );
    }
    await abortableSleep(t.intervalMs ?? PROBE_INTERVAL_MS, t.signal);
  }
}
