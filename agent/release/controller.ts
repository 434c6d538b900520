import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { assertRootFresh, type TrustedRoot } from '../../shared/trust/root.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { createBoardReleases, type BoardReleases } from './board-releases.js';
import { createJournal, type Journal } from './journal.js';
import { recoverInterrupted, swapTo, type SwapDeps } from './swap.js';
import { containerName } from './runtime.js';
import { probe } from './health-gate.js';
import { DiskGuardError } from './transfer/disk-guard.js';
import { TransferDeferred, type InstallSource } from './install-source.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';
import type { StateStore } from '../state-store.js';
import type { ReleaseResult } from '../state-schema.js';
import { createRefusedManifests, refusedManifestKey } from './refused-manifests.js';

export class ControllerError extends TenderError {}

// How often the watch window checks the new release after a flip.
const WATCH_TICK_MS = 2_000;
// Probe failures in a row that count as "failing health" (one slow answer is not a failure).
const WATCH_PROBE_FAILURES = 3;

export interface ControllerDeps {
  vessel: string;
  chunks?: ChunkStore;
  docker: DockerEngine;
  store: StateStore;
  routerSocket: string;
  root: () => TrustedRoot;
  keepReleases: number;
  watchMs: number;
  log: Logger;
  /** Where releases come from (the hub); absent for crew commands, which install only what is on board. */
  source?: InstallSource;
}

/**
 * What the vessel runs and why: applies the shore target unless the crew holds an older release, rolls
 * back by itself when a new release fails its watch window, and carries out crew rollbacks. One update at
 * a time, in this process (a queue) and across processes (the journal).
 */
export function createController(deps: ControllerDeps) {
  const releases: BoardReleases = createBoardReleases(deps.store.db);
  const journal: Journal = createJournal(deps.store.db);
  const refused = createRefusedManifests(deps.store.db);
  const swapDeps: SwapDeps = {
    vessel: deps.vessel,
    chunks: deps.chunks,
    docker: deps.docker,
    journal,
    releases,
    store: deps.store,
    routerSocket: deps.routerSocket,
    root: deps.root,
    keepReleases: deps.keepReleases,
    log: deps.log,
  };
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };
  const problems: { failures: Record<string, number> } = { failures: {} };

  /** Time never goes back below the newest signed time seen (a clock set to 2020 cannot revive stale metadata). */
  function trustedNow(): Date {
    const floor = deps.store.get('time.floor') ?? 0;
    return new Date(Math.max(Date.now(), floor));
  }

  function noteSignedTime(m: ReleaseManifest): void {
    const t = Date.parse(m.createdAt);
    if (t > (deps.store.get('time.floor') ?? 0)) deps.store.set('time.floor', t);
  }

  async function afterUpdate(version: string): Promise<void> {
    const m = releases.manifest(version, deps.root());
    const restarts: Record<string, number> = {};
    for (const s of Object.keys(m.services))
      restarts[s] = (await deps.docker.inspectContainer(containerName(m.app, s, version)))?.restartCount ?? 0;
    if (deps.watchMs > 0) deps.store.set('watch', { version, until: Date.now() + deps.watchMs, restarts });
  }

  function setResult(version: string, result: ReleaseResult['result'], reason: string | null): void {
    deps.store.set('release.lastResult', { version, result, reason, at: new Date().toISOString() });
  }

  const api = {
    releases,
    journal,

    recover: () => serial(() => recoverInterrupted(swapDeps)),

    /** Bring the vessel to the shore target, if the crew's hold and the trust rules allow. */
    reconcile: (desired: DesiredState | undefined) =>
      serial(async () => {
        await recoverInterrupted(swapDeps);
        const d = desired?.release;
        if (!d) return;
        const live = releases.live();
        if (live?.version === d.version) {
          deps.store.set('release.pending', null);
          return;
        }
        const hold = deps.store.get('crew.hold');
        if (hold && d.sequence <= hold.sequence) return;
        const onBoard = releases.get(d.version);
        if (onBoard?.state === 'failed') return;
        if (!onBoard && d.sequence <= releases.maxSequence()) {
          const reason = `release ${d.version} (#${d.sequence}) is older than what this vessel has installed (#${releases.maxSequence()}); refused as a rollback attack`;
          if (deps.store.get('refused.version') !== d.version) {
            deps.store.event('update.refused', { release: d.version, reason });
            deps.store.set('refused.version', d.version);
            deps.log.warn({ release: d.version }, reason);
          }
          setResult(d.version, 'refused', reason);
          return;
        }
        deps.store.set('release.pending', d.version);
        if (!onBoard) {
          if (!deps.source) return;
          const root = deps.root();
          // New installs need fresh trust metadata; what is already on board keeps running regardless.
          assertRootFresh(root, trustedNow());
          const refusedKey = refusedManifestKey(d.app, d.version, d.sequence);
          if (refused.reason(refusedKey) !== undefined) return;
          const bytes = await deps.source.fetchManifest(d.app, d.version);
          let m: ReleaseManifest;
          try {
            m = verifyManifest(root, bytes);
          } catch (err) {
            // Refused once, remembered: the same manifest is not fetched again on every poll.
            const reason = `release ${d.version} refused: ${errorMessage(err)}`;
            refused.refuse(refusedKey, reason);
            deps.store.event('update.refused', { release: d.version, reason });
            setResult(d.version, 'refused', reason);
            deps.log.warn({ release: d.version, reason }, 'release manifest refused');
            return;
          }
          if (m.version !== d.version || m.app !== d.app || m.sequence !== d.sequence) {
            throw new ControllerError(
              `hub sent manifest ${m.app}@${m.version} #${m.sequence} for ${d.app}@${d.version} #${d.sequence}`,
            );
          }
          noteSignedTime(m);
          releases.add(m, bytes);
        }
        const m = releases.manifest(d.version, deps.root());
        const missing = [];
        for (const id of new Set(Object.values(m.services).map((s) => s.imageId)))
          if (!(await deps.docker.imageInspect(id))) missing.push(id);
        if (missing.length > 0) {
          if (!deps.source) {
            setResult(d.version, 'waiting', `${missing.length} image(s) not on board yet`);
            return;
          }
          try {
            await deps.source.transfer(m);
          } catch (err) {
            const why = errorMessage(err);
            setResult(d.version, 'waiting', why);
            if (err instanceof TransferDeferred) return;
            if (err instanceof DiskGuardError && deps.store.get('disk.refused') !== d.version) {
              deps.store.set('disk.refused', d.version);
              deps.store.event('transfer.refused', { release: d.version, reason: why });
            }
            throw err;
          }
        }
        try {
          await swapTo(swapDeps, d.version, 'update', 'shore');
        } catch (err) {
          setResult(d.version, 'failed', errorMessage(err));
          throw err;
        }
        if (hold) deps.store.set('crew.hold', null);
        setResult(d.version, 'live', null);
        await afterUpdate(d.version);
      }),

    /** Crew rollback to the previous (or a named) release kept on board; no link needed. Holds it. */
    rollback: (target: string | undefined, actor: string) =>
      serial(async () => {
        await recoverInterrupted(swapDeps);
        const live = releases.live();
        const to = target ? releases.get(target) : releases.previous();
        if (!to)
          throw new ControllerError(
            target
              ? `release ${target} is not kept on board (see: tender releases)`
              : 'no previous release kept on board',
          );
        if (to.lastLiveAt === null)
          throw new ControllerError(
            `release ${to.version} was never installed on this vessel; refusing to roll back to it`,
          );
        if (live?.version === to.version) throw new ControllerError(`release ${to.version} is already live`);
        const t0 = Date.now();
        await swapTo(swapDeps, to.version, 'rollback', actor, 'crew rollback');
        const desiredSeq = deps.store.get('desired')?.release?.sequence ?? 0;
        deps.store.setMany({ 'crew.hold': { sequence: Math.max(desiredSeq, releases.maxSequence()) }, watch: null });
        deps.store.event('rollback', {
          from: live?.version ?? null,
          to: to.version,
          by: actor,
          at: new Date().toISOString(),
          tookMs: Date.now() - t0,
        });
        setResult(to.version, 'rolled-back', `crew rollback by ${actor}`);
        return { from: live?.version ?? null, to: to.version, tookMs: Date.now() - t0 };
      }),

    resume(actor: string): { held: boolean } {
      const held = deps.store.get('crew.hold') !== undefined;
      deps.store.set('crew.hold', null);
      if (held) deps.store.event('resume', { by: actor, at: new Date().toISOString() });
      return { held: false };
    },

    /** One tick of the watch window; rolls back by itself on a crash loop or failing health. */
    watchTick: () =>
      serial(async () => {
        const w = deps.store.get('watch');
        if (!w) return;
        const live = releases.live();
        if (Date.now() > w.until || live?.version !== w.version) {
          deps.store.set('watch', null);
          return;
        }
        const m = releases.manifest(w.version, deps.root());
        let failure: string | undefined;
        for (const [service, spec] of Object.entries(m.services)) {
          const info = await deps.docker.inspectContainer(containerName(m.app, service, w.version));
          if (!info) failure = `${service} container is gone`;
          else if (!info.running) failure = `${service} exited with code ${info.exitCode}`;
          else if (info.restartCount > (w.restarts[service] ?? 0))
            failure = `${service} restarted ${info.restartCount - (w.restarts[service] ?? 0)} time(s)`;
          else if (spec.gate.type === 'http' || spec.gate.type === 'tcp') {
            const why = await probe({ service, release: w.version, gate: spec.gate, inspect: async () => info }, info);
            problems.failures[service] = why ? (problems.failures[service] ?? 0) + 1 : 0;
            if (problems.failures[service]! >= WATCH_PROBE_FAILURES) failure = `${service} failing health: ${why}`;
          }
          if (failure) break;
        }
        if (!failure) return;
        deps.store.set('watch', null);
        const prev = releases.previous();
        const reason = `release ${w.version} failed in its watch window: ${failure}`;
        deps.log.warn({ release: w.version, reason }, 'rolling back automatically');
        if (!prev) {
          releases.markFailed(w.version, reason);
          deps.store.event('update.failed', {
            release: w.version,
            reason,
            note: 'no previous release to roll back to',
          });
          return;
        }
        await swapTo(swapDeps, prev.version, 'auto-rollback', 'agent', reason);
        releases.markFailed(w.version, reason);
        setResult(w.version, 'rolled-back', reason);
        deps.store.event('rollback', {
          from: w.version,
          to: prev.version,
          by: 'agent',
          reason,
          at: new Date().toISOString(),
        });
      }),

    watchTickMs: WATCH_TICK_MS,
  };
  return api;
}

export type Controller = ReturnType<typeof createController>;
