import { hostAccessLines } from '../../shared/protocol/release-spec.js';
import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { assertRootFresh, type TrustedRoot } from '../../shared/trust/root.js';
import type { DockerEngine } from '../../shared/docker.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { FailureKind } from '../../shared/protocol/rollout-outcome.js';
import { createBoardReleases, manifestDigest, releaseLabel, type BoardReleases } from './board-releases.js';
import { createJournal, type Journal, UpdateInProgressError } from './journal.js';
import {
  recoverInterrupted,
  renameLegacyContainers,
  swapTo,
  type StepEvent,
  type SwapDeps,
  type SwapOptions,
} from './swap.js';
import { containerName } from './runtime.js';
import { PreemptedError, probe } from './health-gate.js';
import { describeStep } from './plan.js';
import type { UpdateKind } from './journal.js';
import { DiskGuardError } from './transfer/disk-guard.js';
import { TransferDeferred, type InstallSource } from './install-source.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';
import type { StateStore } from '../state-store.js';
import type { ReleaseResult } from '../state-schema.js';
import { createRefusedManifests, refusedManifestKey } from './refused-manifests.js';
import { correctedNow } from '../clock.js';
import { targetsOf, type Target } from './targets.js';
import { findDirective } from './rollback-directives.js';
import { reportOutcome, type OutcomeDetail } from './outcomes.js';
import { switchWindow } from './switch-window.js';
import { repairDrift } from './drift.js';
import { checkManifestBounds, trustedTime } from './bounds.js';
import type { RolloutOutcome } from '../../shared/protocol/rollout-outcome.js';

export class ControllerError extends TenderError {}

// How often the watch window checks the new release after a flip.
const WATCH_TICK_MS = 2_000;
// Probe failures in a row that count as "failing health" (one slow answer is not a failure).
const WATCH_PROBE_FAILURES = 3;
// A release that served before is probed this often at its gate: it is usually ready at once.
const WARM_GATE_INTERVAL_MS = 100;

/** What a crew rollback says while it works, and what it answers once the release serves. */
export interface RollbackResult {
  app: string;
  from: string | null;
  to: string;
  /** From the request to the router serving `to`. */
  tookMs: number;
  /** The work it preempted, e.g. "the drain after the auto-rollback to 2.0.0". */
  cutShort: string | null;
  /** Set when nothing had to change (the release was already live when its turn came). */
  note?: string;
}

export interface RollbackOptions {
  /** Each step as it happens, as a line for a person. */
  progress?: (line: string) => void;
  /** Return after the tidy-up too (drain, stop, prune), not only once the release serves. */
  untilDone?: boolean;
}

/**
 * One swap at a time, with a lane for the crew: a crew rollback waiting for the lock goes before every
 * queued shore update, so a queue of them cannot keep the crew waiting.
 */
function createSwapLock() {
  let held = false;
  const waiting: { crew: boolean; go: () => void }[] = [];
  return async function run<T>(fn: () => Promise<T>, crew = false): Promise<T> {
    if (held)
      await new Promise<void>((go) => {
        const at = crew ? waiting.findIndex((w) => !w.crew) : -1;
        waiting.splice(at < 0 ? waiting.length : at, 0, { crew, go });
      });
    held = true;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next.go();
      else held = false;
    }
  };
}

/** A step as the crew reads it. */
function stepLine(e: StepEvent): string | undefined {
  const s = e.step;
  const took = e.ms !== undefined ? ` (${(e.ms / 1000).toFixed(1)}s)` : '';
  const undo = e.phase === 'undo' ? 'undo: ' : '';
  if (e.state === 'begin')
    switch (s.kind) {
      case 'start':
        return `${undo}starting ${s.service}@${s.release}`;
      case 'gate':
        return `${undo}health gate of ${s.service}@${s.release}`;
      case 'drain':
        return `draining the old release for ${(s.ms / 1000).toFixed(1)}s`;
      case 'stop':
        return `${undo}stopping ${s.service}@${s.release}`;
      default:
        return undefined;
    }
  switch (s.kind) {
    case 'start':
      return `${undo}${s.service}@${s.release} running${took}`;
    case 'gate':
      return `${undo}${s.service}@${s.release} healthy${took}`;
    case 'flip':
      return `${undo}router switched to ${s.release || '(none)'}${took}`;
    case 'stop':
      return `${undo}${s.service}@${s.release} stopped${took}`;
    case 'remove':
      return `${undo}${s.service}@${s.release} removed${took}`;
    case 'drain':
      return `drained${took}`;
    default:
      return undefined;
  }
}

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
  /** The corrected clock (ms); default: the vessel's clock plus the hub's measured offset. */
  now?: () => number;
  /** A backup or restore has the containers in hand: drift repair waits. */
  busy?: () => boolean;
}

/** What to do about one app's target, decided from what is on board (no network). */
type Decision =
  { act: 'none' } | { act: 'install'; kind: 'update' } | { act: 'install'; kind: 'rollback'; counter: number };

/**
 * What the vessel runs and why, per app: applies the shore target unless the crew holds an older release,
 * goes back to a kept release only with a signed rollback directive, switches only inside the maintenance
 * window, rolls back by itself when a new release fails its watch window, and carries out crew rollbacks.
 * Swaps run one at a time (a queue here, the journal across processes); downloads run outside the queue,
 * so a crew action never waits for one.
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
  const lock = createSwapLock();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => lock(fn);
  /** The swap under way in this process, so a crew rollback can cut it short. */
  let running:
    | {
        abort: AbortController;
        app: string;
        to: string;
        kind: UpdateKind;
        step: string | null;
        flipped: boolean;
        /** Who else watches this swap's steps (a crew rollback waiting for it to end). */
        watchers: Set<(e: StepEvent) => void>;
      }
    | undefined;
  /** The release the watch window is rolling back from: failing, never the crew's "previous". */
  let rollingBackFrom: { app: string; version: string } | undefined;

  async function swap(
    app: string,
    to: string,
    kind: UpdateKind,
    actor: string,
    reason: string | null,
    opts: SwapOptions = {},
  ): Promise<void> {
    const abort = new AbortController();
    const mine = {
      abort,
      app,
      to,
      kind,
      step: null as string | null,
      flipped: false,
      watchers: new Set<(e: StepEvent) => void>(),
    };
    running = mine;
    try {
      await swapTo(swapDeps, app, to, kind, actor, reason, {
        ...opts,
        signal: abort.signal,
        onStep: (e) => {
          mine.step = e.state === 'begin' ? e.step.kind : null;
          if (e.step.kind === 'flip' && e.state === 'done' && e.phase === 'forward') mine.flipped = true;
          deps.log.info({ update: e.update, step: describeStep(e.step), state: e.state, ms: e.ms }, 'update step');
          opts.onStep?.(e);
          for (const w of mine.watchers) w(e);
        },
      });
    } finally {
      if (running === mine) running = undefined;
    }
  }

  /** Stop what a watch window kept warm, unless it serves again (a rollback went back to it). */
  async function stopWarm(app: string, version: string | undefined): Promise<void> {
    if (!version || releases.live(app)?.version === version || !releases.get(app, version)) return;
    try {
      const m = releases.manifest(app, version, deps.root());
      for (const service of Object.keys(m.services)) {
        const info = await deps.docker.inspectContainer(containerName(app, service, version));
        if (info?.running) await deps.docker.stopContainer(info.id, 10);
      }
    } catch (err) {
      deps.log.warn({ release: `${app}@${version}`, reason: errorMessage(err) }, 'warm colour not stopped');
    }
  }
  const problems: { failures: Record<string, number> } = { failures: {} };
  const now = deps.now ?? (() => correctedNow(deps.store.get('hub.skewMs')));
  const store = deps.store;

  function setResult(version: string, result: ReleaseResult['result'], reason: string | null): void {
    store.set('release.lastResult', { version, result, reason, at: new Date(now()).toISOString() });
  }

  const outcome = (t: Target, o: RolloutOutcome, detail?: OutcomeDetail) => reportOutcome(store, t, o, detail);

  function fail(t: Target, failure: FailureKind, reason: string): void {
    setResult(t.version, failure === 'refused' ? 'refused' : 'failed', reason);
    outcome(t, 'failed', { failure, reason });
  }

  /** A refusal sent once per release and reason (the hub polls every minute; the event goes ashore once). */
  function refuseOnce(t: Target, type: 'update.refused' | 'rollback.refused', reason: string): void {
    const key = `${type} ${releaseLabel(t)}: ${reason}`.slice(0, 1000);
    if (store.get('rollback.refused') !== key) {
      store.event(type, { app: t.app, release: t.version, reason });
      store.set('rollback.refused', key);
      deps.log.warn({ release: releaseLabel(t), reason }, type === 'rollback.refused' ? 'rollback refused' : reason);
    }
    fail(t, 'refused', reason);
  }

  function heldFor(app: string) {
    const hold = store.get('crew.hold');
    return hold && (hold.app === undefined || hold.app === app) ? hold : undefined;
  }

  /**
   * Decide from what is on board, with no network: called before fetching and again, in the queue, right
   * before the switch (a crew hold or rollback made during a download wins over the download).
   */
  function decide(t: Target, desired: DesiredState | undefined): Decision {
    const live = releases.live(t.app);
    const onBoard = releases.get(t.app, t.version);
    if (t.digest && onBoard && onBoard.digest !== t.digest) {
      refuseOnce(
        t,
        'update.refused',
        `release ${releaseLabel(t)} on board has manifest digest ${onBoard.digest.slice(0, 12)}, ` +
          `the target names ${t.digest.slice(0, 12)}`,
      );
      return { act: 'none' };
    }
    if (live?.version === t.version) {
      store.set('release.pending', null);
      if (!store.get('watch')) outcome(t, 'installed-healthy');
      return { act: 'none' };
    }
    const hold = heldFor(t.app);
    if (hold && t.sequence <= hold.sequence) {
      outcome(t, 'held', { reason: 'the crew holds another release (tender resume to follow shore again)' });
      return { act: 'none' };
    }
    if (onBoard?.state === 'failed') return { act: 'none' };
    const newest = releases.maxSequence(t.app, t.version);
    const back = live !== undefined && t.sequence < live.sequence;
    // Forward: newer than anything of the app, or newer than what runs and on board (staged, or kept
    // after a rollback and named again).
    if (!back && (t.sequence > newest || onBoard)) return { act: 'install', kind: 'update' };
    // Going back: only to a release this vessel ran and keeps, and only with a signed directive for it.
    if (!back || !onBoard || onBoard.lastLiveAt === null) {
      refuseOnce(
        t,
        'update.refused',
        `release ${releaseLabel(t)} (#${t.sequence}) is older than what this vessel has installed of ` +
          `${t.app} (#${newest}); refused as a rollback attack`,
      );
      return { act: 'none' };
    }
    const verdict = findDirective(
      desired?.directives ?? [],
      { app: t.app, version: t.version, digest: onBoard.digest },
      {
        root: deps.root(),
        vessel: deps.vessel,
        groups: desired?.groups ?? [],
        now: now(),
        lastCounter: store.get('directive.counters')?.[t.app] ?? 0,
      },
    );
    if (!verdict.ok) {
      refuseOnce(t, 'rollback.refused', `return to kept release ${releaseLabel(t)} refused: ${verdict.reason}`);
      return { act: 'none' };
    }
    return { act: 'install', kind: 'rollback', counter: verdict.directive.counter };
  }

  /** Fetch, verify and keep the target's manifest; undefined when refused (remembered, with its event). */
  async function acceptManifest(t: Target, source: InstallSource): Promise<ReleaseManifest | undefined> {
    const root = deps.root();
    // New installs need fresh trust metadata (on the corrected clock); what is on board keeps running.
    assertRootFresh(root, new Date(trustedTime(store, now())));
    const refusedKey = refusedManifestKey(t.app, t.version, t.sequence);
    if (refused.reason(refusedKey) !== undefined) return undefined;
    const bytes = t.manifest ? Buffer.from(t.manifest, 'base64') : await source.fetchManifest(t.app, t.version);
    let m: ReleaseManifest;
    try {
      if (t.digest && manifestDigest(bytes) !== t.digest)
        throw new ControllerError(
          `manifest digest ${manifestDigest(bytes).slice(0, 12)} is not the target's ${t.digest.slice(0, 12)}`,
        );
      m = verifyManifest(root, bytes);
      if (m.version !== t.version || m.app !== t.app || m.sequence !== t.sequence)
        throw new ControllerError(
          `manifest is ${releaseLabel(m)} #${m.sequence}, the target ${releaseLabel(t)} #${t.sequence}`,
        );
      checkManifestBounds(m, { newest: releases.maxSequence(t.app, t.version), now: now() });
    } catch (err) {
      // Refused once, remembered: the same manifest is not fetched again on every poll.
      const reason = `release ${t.version} refused: ${errorMessage(err)} (app ${t.app})`;
      refused.refuse(refusedKey, reason);
      store.event('update.refused', { app: t.app, release: t.version, reason });
      fail(t, 'refused', reason);
      deps.log.warn({ release: releaseLabel(t), reason }, 'release manifest refused');
      return undefined;
    }
    const floor = store.get('time.floor') ?? 0;
    const created = Date.parse(m.createdAt);
    if (created > floor) store.set('time.floor', Math.min(created, now()));
    releases.add(m, bytes);
    // Shown and logged before it ever runs: what this release may touch on the host.
    const access = hostAccessLines(m.services);
    if (access.length > 0) {
      store.event('release.host-access', { app: t.app, release: t.version, hostAccess: access });
      deps.log.warn({ release: releaseLabel(t), hostAccess: access }, 'release declares host access');
    }
    return m;
  }

  async function missingImages(m: ReleaseManifest): Promise<number> {
    let missing = 0;
    for (const id of new Set(Object.values(m.services).map((s) => s.imageId)))
      if (!(await deps.docker.imageInspect(id))) missing++;
    return missing;
  }

  /** Bring one app to its target: decide, fetch and download outside the queue, switch inside it. */
  async function reconcileApp(t: Target, desired: DesiredState | undefined): Promise<void> {
    if (decide(t, desired).act === 'none') return;
    store.set('release.pending', t.version);
    let m: ReleaseManifest | undefined;
    if (!releases.get(t.app, t.version)) {
      if (!deps.source) return;
      m = await acceptManifest(t, deps.source);
      if (!m) return;
    } else m = releases.manifest(t.app, t.version, deps.root());
    const missing = await missingImages(m);
    if (missing > 0) {
      if (!deps.source) {
        setResult(t.version, 'waiting', `${missing} image(s) not on board yet`);
        return;
      }
      outcome(t, 'downloading', { progress: { done: 0, total: imageBytes(m) } });
      try {
        await deps.source.transfer(m);
      } catch (err) {
        const why = errorMessage(err);
        setResult(t.version, 'waiting', why);
        if (err instanceof TransferDeferred) return;
        if (err instanceof DiskGuardError && store.get('disk.refused') !== t.version) {
          store.set('disk.refused', t.version);
          store.event('transfer.refused', { app: t.app, release: t.version, reason: why });
          outcome(t, 'failed', { failure: 'transfer-failed', reason: why });
        }
        throw err;
      }
    }
    await serial(() => switchApp(t, desired));
  }

  /** In the queue: decide again (a hold set during the download wins), wait for the window, swap. */
  async function switchApp(t: Target, desired: DesiredState | undefined): Promise<void> {
    await recoverInterrupted(swapDeps);
    const d = decide(t, desired);
    if (d.act === 'none') return;
    const applied = store.get('apply.now')?.[t.app] === t.version;
    const w = switchWindow(desired, now());
    if (!w.open && !applied) {
      setResult(t.version, 'waiting', w.reason);
      outcome(t, 'waiting-for-window', { reason: w.reason, ...(w.until && { until: w.until }) });
      return;
    }
    const hold = heldFor(t.app);
    const before = releases.live(t.app)?.version;
    // After an update the old colour stays up through the watch window: a rollback then is a router flip.
    const keepFrom = d.kind === 'update' && deps.watchMs > 0;
    try {
      await swap(t.app, t.version, d.kind, 'shore', d.kind === 'rollback' ? `directive #${d.counter}` : null, {
        keepFrom,
      });
    } catch (err) {
      if (err instanceof PreemptedError) {
        // The crew rolled back meanwhile: their hold decides now, nothing failed.
        outcome(t, 'held', { reason: errorMessage(err) });
        return;
      }
      // Another process (the running agent, or a crew command) is mid-update: nothing of this release
      // failed, and marking it failed would keep it from ever being applied. The caller may try again.
      if (err instanceof UpdateInProgressError) throw err;
      fail(t, 'gate-failed', errorMessage(err));
      throw err;
    }
    if (d.kind === 'rollback') {
      store.set('directive.counters', { ...store.get('directive.counters'), [t.app]: d.counter });
      store.event('rollback.accepted', { app: t.app, release: t.version, counter: d.counter });
    }
    if (hold) store.set('crew.hold', null);
    if (applied) {
      const { [t.app]: _done, ...rest } = store.get('apply.now') ?? {};
      store.set('apply.now', rest);
    }
    setResult(t.version, 'live', null);
    await afterUpdate(t, keepFrom ? before : undefined);
  }

  async function afterUpdate(t: Target, warm?: string): Promise<void> {
    const m = releases.manifest(t.app, t.version, deps.root());
    const restarts: Record<string, number> = {};
    for (const s of Object.keys(m.services))
      restarts[s] = (await deps.docker.inspectContainer(containerName(m.app, s, t.version)))?.restartCount ?? 0;
    if (deps.watchMs > 0)
      store.set('watch', {
        app: t.app,
        version: t.version,
        rolloutId: t.rolloutId,
        until: Date.now() + deps.watchMs,
        restarts,
        ...(warm && { warm }),
      });
    else outcome(t, 'installed-healthy');
  }

  /** Which app a crew command means: named (APP@VERSION, or a version only one app has), or the only one. */
  function crewApp(target: string | undefined): { app: string; version?: string } {
    const at = target?.indexOf('@') ?? -1;
    if (target && at > 0) return { app: target.slice(0, at), version: target.slice(at + 1) };
    if (target) {
      const apps = [...new Set(releases.withVersion(target).map((r) => r.app))];
      if (apps.length > 1) throw new ControllerError(`several apps have a release ${target}: name it as APP@${target}`);
      if (apps.length === 1) return { app: apps[0]!, version: target };
      throw new ControllerError(`release ${target} is not kept on board (see: tender releases)`);
    }
    const apps = releases.servingAll().map((r) => r.app);
    if (apps.length > 1) throw new ControllerError(`several apps run on board (${apps.join(', ')}): name APP@VERSION`);
    return { app: apps[0] ?? releases.apps()[0] ?? '' };
  }

  const api = {
    releases,
    journal,

    /** What a kept release may touch on the host ("SERVICE: /PATH ro|rw"); undefined when it no longer verifies. */
    hostAccess(app: string, version: string): string[] | undefined {
      try {
        return hostAccessLines(releases.manifest(app, version, deps.root()).services);
      } catch {
        return undefined;
      }
    },

    recover: () =>
      serial(async () => {
        await renameLegacyContainers(swapDeps).catch((err) =>
          deps.log.warn({ reason: errorMessage(err) }, 'containers not renamed to their injective names'),
        );
        await recoverInterrupted(swapDeps);
      }),

    /** Bring every app to its shore target, if the crew's hold, the window and the trust rules allow. */
    async reconcile(desired: DesiredState | undefined): Promise<void> {
      await serial(() => recoverInterrupted(swapDeps));
      let first: unknown;
      for (const t of targetsOf(desired)) {
        try {
          await reconcileApp(t, desired);
        } catch (err) {
          first ??= err;
        }
      }
      if (first) throw first;
    },

    /**
     * Crew rollback to the previous (or a named) release kept on board; no link needed. Holds it. Accepted
     * whatever the agent is doing: a drain (of any swap) or a gate of another release of the app is cut
     * short, a download goes on beside it, queued shore updates wait behind it. Answers once the release
     * serves through the router; the tidy-up (drain, stop, prune) goes on after that unless `untilDone`.
     */
    async rollback(target: string | undefined, actor: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
      const say = opts.progress ?? (() => {});
      const t0 = Date.now();
      const which = crewApp(target);
      const pick = () => {
        const failing = rollingBackFrom?.app === which.app ? rollingBackFrom.version : undefined;
        const to = which.version
          ? releases.get(which.app, which.version)
          : releases
              .list(which.app)
              .filter((x) => x.state === 'kept' && x.lastLiveAt !== null && x.version !== failing)
              .sort((a, b) => b.lastLiveAt! - a.lastLiveAt!)[0];
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
        return to;
      };
      const first = pick();
      const app = first.app;
      const fromAtStart = releases.live(app)?.version ?? null;
      const r = running;
      if (fromAtStart === first.version && !(r && r.app === app))
        throw new ControllerError(`release ${first.version} is already live`);
      // The hold is set before anything else: a shore update deciding meanwhile (here or in another
      // process) must see it, and not apply the newer target again. Put back if the rollback fails.
      const before = store.get('crew.hold');
      const desiredSeq = targetsOf(store.get('desired')).find((x) => x.app === app)?.sequence ?? 0;
      store.set('crew.hold', { sequence: Math.max(desiredSeq, releases.maxSequence(app)), app });
      let cutShort: string | null = null;
      if (r) {
        const what =
          {
            drain: `the drain after the ${r.kind} to ${r.to}`,
            gate: `the health gate of ${r.app}@${r.to} (${r.kind})`,
            start: `the ${r.kind} to ${r.app}@${r.to} (starting its containers)`,
            stop: `the tidy-up after the ${r.kind} to ${r.to} (stopping the old colour)`,
          }[r.step ?? ''] ?? `the ${r.kind} to ${r.app}@${r.to}`;
        // A swap already past its switch only has its drain and tidy-up left; one of this app going
        // elsewhere is undone (what served before its switch still serves). One going where the crew
        // goes, or of another app and not yet switched, is waited for.
        if (r.flipped || (r.app === app && r.to !== first.version)) {
          cutShort = what;
          say(`rolling back now; cutting short ${what}`);
          r.abort.abort(`crew rollback to ${app}@${first.version} by ${actor}`);
        } else say(`waiting for ${what} to end`);
        // What it does until it ends (an undo, a last step) is shown too.
        r.watchers.add((e) => {
          const line = stepLine(e);
          if (line) say(line);
        });
      }
      say(`rolling back ${app} from ${fromAtStart ?? 'nothing'} to ${first.version}`);
      let served: RollbackResult | undefined;
      let resolveServed!: (v: RollbackResult) => void;
      const servedP = new Promise<RollbackResult>((res) => (resolveServed = res));
      const serve = (from: string | null, to: string, note?: string) => {
        served = { app, from, to, tookMs: Date.now() - t0, cutShort, ...(note && { note }) };
        resolveServed(served);
      };
      const work = lock(async () => {
        await recoverInterrupted(swapDeps);
        const to = pick();
        const live = releases.live(app)?.version ?? null;
        if (live === to.version) {
          store.set('watch', null);
          setResult(to.version, 'rolled-back', `crew rollback by ${actor}`);
          say(`${app}@${to.version} is live`);
          return serve(fromAtStart, to.version, `${to.version} was already live when the rollback's turn came`);
        }
        const w = store.get('watch');
        await swap(app, to.version, 'rollback', actor, 'crew rollback', {
          gateIntervalMs: WARM_GATE_INTERVAL_MS,
          onStep: (e) => {
            const line = stepLine(e);
            if (line) say(line);
            if (e.step.kind !== 'commit' || e.state !== 'done') return;
            // Committed: the router serves it and the vessel knows it. The crew has their answer.
            store.set('watch', null);
            store.event('rollback', {
              app,
              from: live,
              to: to.version,
              by: actor,
              at: new Date().toISOString(),
              tookMs: Date.now() - t0,
              ...(cutShort && { cutShort }),
            });
            setResult(to.version, 'rolled-back', `crew rollback by ${actor}`);
            serve(live, to.version);
            say(`${app}@${to.version} serves through the router after ${((Date.now() - t0) / 1000).toFixed(1)}s`);
          },
        });
        // What the window kept warm and the rollback did not go back to was a stray of the swap: stopped.
        if (w?.warm && w.warm !== to.version) await stopWarm(app, w.warm);
      }, true);
      const failed = (err: unknown) => {
        if (served) {
          deps.log.warn({ reason: errorMessage(err) }, 'crew rollback: tidy-up after the switch failed');
          return;
        }
        store.set('crew.hold', before ?? null);
        throw err;
      };
      if (opts.untilDone) {
        await work.catch(failed);
        return served!;
      }
      work.catch((err) => {
        if (served) failed(err);
      });
      return Promise.race([servedP, work.then(() => servedP, failed)]) as Promise<RollbackResult>;
    },

    resume(actor: string): { held: boolean } {
      const held = store.get('crew.hold') !== undefined;
      store.set('crew.hold', null);
      if (held) store.event('resume', { by: actor, at: new Date().toISOString() });
      return { held: false };
    },

    /**
     * Crew: switch to the app's pending shore release now, outside its maintenance window (an event). If
     * it is not on board yet, the agent switches as soon as it is.
     */
    async apply(app: string | undefined, actor: string): Promise<{ app: string; version: string; switched: boolean }> {
      const desired = store.get('desired');
      const pending = targetsOf(desired).filter((t) => releases.live(t.app)?.version !== t.version);
      const t = app ? pending.find((p) => p.app === app) : pending[0];
      if (!t) throw new ControllerError(app ? `no pending release of ${app} to apply` : 'no pending release to apply');
      if (!app && pending.length > 1)
        throw new ControllerError(
          `several apps have a pending release (${pending.map((p) => p.app).join(', ')}): name one`,
        );
      store.set('apply.now', { ...store.get('apply.now'), [t.app]: t.version });
      if (heldFor(t.app)) store.set('crew.hold', null);
      store.event('apply', { app: t.app, release: t.version, by: actor, at: new Date().toISOString() });
      const onBoard = releases.get(t.app, t.version);
      if (!onBoard || (await missingImages(releases.manifest(t.app, t.version, deps.root()))) > 0)
        return { app: t.app, version: t.version, switched: false };
      await serial(() => switchApp(t, desired));
      return { app: t.app, version: t.version, switched: releases.live(t.app)?.version === t.version };
    },

    /** One tick of the watch window; rolls back by itself on a crash loop or failing health. */
    watchTick: () =>
      serial(async () => {
        const w = store.get('watch');
        if (!w) return;
        const app = w.app ?? releases.live()?.app ?? '';
        const live = releases.live(app);
        const t: Target = { app, version: w.version, sequence: 0, rolloutId: w.rolloutId ?? null };
        if (live?.version !== w.version) {
          store.set('watch', null);
          await stopWarm(app, w.warm);
          return;
        }
        if (Date.now() > w.until) {
          store.set('watch', null);
          await stopWarm(app, w.warm);
          outcome(t, 'installed-healthy');
          return;
        }
        const m = releases.manifest(app, w.version, deps.root());
        let failure: string | undefined;
        let kind: FailureKind = 'rolled-back';
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
          if (failure && !info?.running) kind = 'crashed-after-flip';
          if (failure) break;
        }
        if (!failure) return;
        store.set('watch', null);
        const prev = releases.previous(app);
        const reason = `release ${w.version} failed in its watch window: ${failure}`;
        deps.log.warn({ release: releaseLabel(t), reason }, 'rolling back automatically');
        if (!prev) {
          releases.markFailed(app, w.version, reason);
          store.event('update.failed', {
            app,
            release: w.version,
            reason,
            note: 'no previous release to roll back to',
          });
          outcome(t, 'failed', { failure: kind, reason });
          return;
        }
        // A crew rollback during this swap (its drain) must not pick the failing release as "previous".
        rollingBackFrom = { app, version: w.version };
        try {
          await swap(app, prev.version, 'auto-rollback', 'agent', reason, { gateIntervalMs: WARM_GATE_INTERVAL_MS });
        } catch (err) {
          if (!(err instanceof PreemptedError)) throw err;
          deps.log.info({ reason: errorMessage(err) }, 'automatic rollback cut short by the crew');
        } finally {
          rollingBackFrom = undefined;
        }
        releases.markFailed(app, w.version, reason);
        if (w.warm && w.warm !== prev.version) await stopWarm(app, w.warm);
        setResult(w.version, 'rolled-back', reason);
        outcome(t, 'failed', { failure: kind, reason });
        store.event('rollback', {
          app,
          from: w.version,
          to: prev.version,
          by: 'agent',
          reason,
          at: new Date().toISOString(),
        });
      }),

    watchTickMs: WATCH_TICK_MS,

    /** Start again (or make again) a live container found missing, exited or replaced; in the queue. */
    repairDrift: () =>
      serial(() =>
        repairDrift({
          vessel: deps.vessel,
          docker: deps.docker,
          releases,
          journal,
          store,
          routerSocket: deps.routerSocket,
          root: deps.root,
          log: deps.log,
          busy: deps.busy,
        }),
      ),
  };
  return api;
}

function imageBytes(m: ReleaseManifest): number {
  let total = 0;
  for (const img of Object.values(m.images)) for (const l of img.layers) total += l.size;
  return total;
}

export type Controller = ReturnType<typeof createController>;
