import type { Logger } from 'pino';
import { TenderError, errorMessage } from '../../shared/errors.js';
import type { ContainerInfo, DockerEngine } from '../../shared/docker.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { planSwap, planUndo, describeStep, type Colour, type ReleaseView, type Step } from './plan.js';
import { containerName, containerSpec, LABELS, legacyContainerName, volumeName } from './runtime.js';
import { abortableSleep, PreemptedError, waitHealthy } from './health-gate.js';
import { pidAlive, type Journal, type JournalStep, type UpdateKind } from './journal.js';
import { releaseLabel, type BoardReleases } from './board-releases.js';
import type { StateStore } from '../state-store.js';
import { routerRequest } from '../router/control.js';
import type { Route } from '../router/proxy.js';
import { faultPoint } from '../fault.js';
import { allReleaseChunks } from '../../shared/content/release-chunks.js';
import type { ChunkStore } from '../../shared/content/chunk-store.js';

export class SwapError extends TenderError {}

// Old colours get this long to stop cleanly before Docker kills them.
const STOP_TIMEOUT_S = 10;

export interface SwapDeps {
  vessel: string;
  /** The vessel's chunk store: chunks of releases no longer on board are collected at prune. */
  chunks?: ChunkStore;
  docker: DockerEngine;
  journal: Journal;
  releases: BoardReleases;
  store: StateStore;
  routerSocket: string;
  root: () => TrustedRoot;
  keepReleases: number;
  log: Logger;
}

/** One step of a swap as it happens, for the crew watching it (CLI, console) and the log. */
export interface StepEvent {
  update: number;
  step: Step;
  state: 'begin' | 'done';
  phase: 'forward' | 'undo';
  /** How long the step took (done only). */
  ms?: number;
}

export interface SwapOptions {
  /**
   * Aborted (a crew rollback preempting this swap): a wait in a gate or a drain ends at once. Before the
   * flip the swap is undone (the old release never stopped serving); after it the swap ends done, the
   * drain cut short and what it would have stopped left to the next swap (its strays).
   */
  signal?: AbortSignal;
  onStep?: (e: StepEvent) => void;
  /** Probe interval of the health gates: short for a release that served before. */
  gateIntervalMs?: number;
  /** Leave the old colour running after the flip (warm through the watch window). */
  keepFrom?: boolean;
}

function view(m: ReleaseManifest): ReleaseView {
  return { app: m.app, version: m.version, services: m.services };
}

/**
 * Carry out a swap of one app from its live release to `to`, one journaled step at a time. A failure
 * before the router flips undoes what was started (the old release never stopped serving); after the flip
 * the new release serves and the remaining steps only tidy up.
 */
export async function swapTo(
  deps: SwapDeps,
  app: string,
  to: string,
  kind: UpdateKind,
  actor: string,
  reason: string | null = null,
  opts: SwapOptions = {},
): Promise<void> {
  await recoverInterrupted(deps);
  const root = deps.root();
  const target = deps.releases.manifest(app, to, root);
  const live = deps.releases.live(app);
  if (live?.version === to) throw new SwapError(`release ${releaseLabel(target)} is already live`);
  const from = live ? deps.releases.manifest(app, live.version, root) : null;
  // Before anything stops: every container name the target needs is free or its own (ATTACKS.md 37).
  await assertNamesFree(deps, target);
  const colours = from ? await liveColours(deps, from) : {};
  const strays = await strayContainers(deps, app, [to, from?.version ?? '']);
  const forward = planSwap(from && view(from), view(target), colours, { keepFrom: opts.keepFrom, strays });
  const id = deps.journal.begin(kind, app, from?.version ?? null, to, actor, forward);
  deps.log.info(
    { update: id, kind, app, from: from?.version ?? null, to, steps: forward.map(describeStep) },
    'update started',
  );
  deps.store.event(`${kind}.started`, { app, from: from?.version ?? null, to, actor, reason });
  const ctx: Ctx = { deps, from, to: target, id, opts };
  const steps = deps.journal.steps(id);
  try {
    await runSteps(ctx, steps);
  } catch (err) {
    const why = errorMessage(err);
    const preempted = err instanceof PreemptedError;
    if (steps.some((s) => s.step.kind === 'flip' && s.done)) {
      if (preempted) {
        // The new release serves: only the drain and the tidy-up are cut, the next swap stops the rest.
        deps.log.info({ update: id, reason: why }, 'update cut short after its switch');
        deps.journal.finish(id, 'done', `cut short: ${why}`);
        deps.store.event(`${kind}.done`, { app, from: from?.version ?? null, to, actor, reason: `cut short: ${why}` });
        return;
      }
      // The new release serves; a failure while tidying up is worth a warning, not an undo.
      deps.log.warn({ update: id, reason: why }, 'update finished with a tidy-up failure');
      deps.journal.finish(id, 'done', `tidy-up: ${why}`);
      return;
    }
    // The undo itself is never cut short: it puts back the release that served.
    await undo({ ...ctx, opts: { onStep: opts.onStep } }, why, preempted);
    if (preempted) throw new PreemptedError(`${kind} to ${to} was cut short and undone: ${why}`);
    throw new SwapError(`${kind} to ${to} failed and was undone: ${why}`);
  }
  deps.journal.finish(id, 'done', reason);
  deps.store.event(`${kind}.done`, { app, from: from?.version ?? null, to, actor, reason });
  deps.log.info({ update: id, app, to }, 'update done');
}

/** The labels say whose a container is; a name held by another release (or by no release of ours) is a clash. */
function ownedBy(info: ContainerInfo, app: string, service: string, version: string): boolean {
  const l = info.labels;
  return l[LABELS.app] === app && l[LABELS.service] === service && l[LABELS.release] === version;
}

async function assertNamesFree(deps: SwapDeps, m: ReleaseManifest): Promise<void> {
  for (const service of Object.keys(m.services)) {
    const name = containerName(m.app, service, m.version);
    const info = await deps.docker.inspectContainer(name);
    if (info && !ownedBy(info, m.app, service, m.version)) {
      const l = info.labels;
      const holder = l[LABELS.release]
        ? `${l[LABELS.app]}/${l[LABELS.service]}@${l[LABELS.release]}`
        : 'a container not ours';
      throw new SwapError(
        `container name ${name} for ${service}@${releaseLabel(m)} is taken by ${holder}; ` +
          'refused before anything stopped',
      );
    }
  }
}

/**
 * Containers named by an agent before names were injective get their new names, in place (they keep
 * running; the router routes by port). Only a container whose labels name exactly that release is renamed.
 */
export async function renameLegacyContainers(deps: SwapDeps): Promise<void> {
  for (const r of deps.releases.list()) {
    let m: ReleaseManifest;
    try {
      m = deps.releases.manifest(r.app, r.version, deps.root());
    } catch {
      continue;
    }
    for (const service of Object.keys(m.services)) {
      const now = containerName(m.app, service, m.version);
      const old = legacyContainerName(m.app, service, m.version);
      if (old === now) continue;
      const info = await deps.docker.inspectContainer(old);
      if (!info || !ownedBy(info, m.app, service, m.version) || (await deps.docker.inspectContainer(now))) continue;
      await deps.docker.renameContainer(info.id, now);
      deps.log.info({ from: old, to: now }, 'container renamed to its injective name');
    }
  }
}

/** Running containers of the app (this vessel's) of releases other than `except`: left by a cut-short swap or warm. */
async function strayContainers(
  deps: SwapDeps,
  app: string,
  except: string[],
): Promise<{ service: string; release: string }[]> {
  const out: { service: string; release: string }[] = [];
  for (const c of await deps.docker.listContainers({ [LABELS.app]: app })) {
    const l = c.labels;
    const service = l[LABELS.service];
    const release = l[LABELS.release];
    if (!c.running || !service || !release || except.includes(release)) continue;
    if (l[LABELS.vessel] !== undefined && l[LABELS.vessel] !== deps.vessel) continue;
    if (containerName(app, service, release) !== c.name.replace(/^\//, '')) continue;
    out.push({ service, release });
  }
  return out;
}

interface Ctx {
  deps: SwapDeps;
  from: ReleaseManifest | null;
  to: ReleaseManifest;
  id: number;
  opts: SwapOptions;
}

async function runSteps(ctx: Ctx, steps: JournalStep[]): Promise<void> {
  for (const s of steps) {
    if (s.done) continue;
    const signal = ctx.opts.signal;
    if (signal?.aborted) throw new PreemptedError(String(signal.reason ?? 'preempted'));
    faultPoint(s.step.kind, 'before');
    const t0 = Date.now();
    ctx.opts.onStep?.({ update: ctx.id, step: s.step, state: 'begin', phase: s.phase });
    await execStep(ctx, s.step);
    ctx.deps.journal.markDone(ctx.id, s.idx);
    s.done = true;
    ctx.opts.onStep?.({ update: ctx.id, step: s.step, state: 'done', phase: s.phase, ms: Date.now() - t0 });
    faultPoint(s.step.kind, 'after');
  }
}

async function undo(ctx: Ctx, why: string, preempted = false): Promise<void> {
  const { deps } = ctx;
  // Steps done, plus the first not marked done: a crash may have come after it acted but before its mark.
  const all = deps.journal.steps(ctx.id).filter((s) => s.phase === 'forward');
  const firstOpen = all.findIndex((s) => !s.done);
  const forward = (firstOpen < 0 ? all : all.slice(0, firstOpen + 1)).map((s) => s.step);
  const undoSteps = deps.journal.addUndo(ctx.id, planUndo(ctx.from && view(ctx.from), view(ctx.to), forward));
  deps.log.warn({ update: ctx.id, reason: why, steps: undoSteps.map((s) => describeStep(s.step)) }, 'undoing update');
  for (const s of undoSteps) {
    try {
      const t0 = Date.now();
      ctx.opts.onStep?.({ update: ctx.id, step: s.step, state: 'begin', phase: 'undo' });
      await execStep(ctx, s.step);
      deps.journal.markDone(ctx.id, s.idx);
      ctx.opts.onStep?.({ update: ctx.id, step: s.step, state: 'done', phase: 'undo', ms: Date.now() - t0 });
    } catch (err) {
      // Keep going: every undo step is independent, and leaving the old release half-started is worse.
      deps.log.error({ update: ctx.id, step: describeStep(s.step), reason: errorMessage(err) }, 'undo step failed');
    }
  }
  deps.journal.finish(ctx.id, 'failed', why);
  if (preempted) {
    // Nothing wrong with the release: the crew chose another. It stays on board and may be applied later.
    deps.store.event('update.cut-short', {
      app: ctx.to.app,
      from: ctx.from?.version ?? null,
      to: ctx.to.version,
      reason: why,
    });
    return;
  }
  deps.releases.markFailed(ctx.to.app, ctx.to.version, why);
  deps.store.event('update.failed', {
    app: ctx.to.app,
    from: ctx.from?.version ?? null,
    to: ctx.to.version,
    reason: why,
  });
}

function manifestOf(ctx: Ctx, release: string): ReleaseManifest {
  if (release === ctx.to.version) return ctx.to;
  if (ctx.from && release === ctx.from.version) return ctx.from;
  throw new SwapError(`step names release ${release}, which is neither side of this update`);
}

async function execStep(ctx: Ctx, step: Step): Promise<void> {
  const { deps } = ctx;
  switch (step.kind) {
    case 'start': {
      const m = manifestOf(ctx, step.release);
      const spec = m.services[step.service]!;
      const name = containerName(m.app, step.service, m.version);
      let info = await deps.docker.inspectContainer(name);
      if (!info) {
        if (!(await deps.docker.imageInspect(spec.imageId)))
          throw new SwapError(
            `image ${spec.imageId.slice(7, 19)} of ${step.service}@${m.version} is not in the engine`,
          );
        for (const v of spec.volumes)
          if (v.kind === 'volume') await deps.docker.ensureVolume(volumeName(m.app, v.source), { [LABELS.app]: m.app });
        await deps.docker.createContainer(
          containerSpec(deps.vessel, m.app, step.service, m.version, step.colour, spec),
        );
        info = await deps.docker.inspectContainer(name);
      }
      if (!info!.running) await deps.docker.startContainer(name);
      return;
    }
    case 'gate': {
      const m = manifestOf(ctx, step.release);
      const name = containerName(m.app, step.service, m.version);
      await waitHealthy({
        service: step.service,
        release: m.version,
        gate: m.services[step.service]!.gate,
        inspect: () => deps.docker.inspectContainer(name),
        intervalMs: ctx.opts.gateIntervalMs,
        signal: ctx.opts.signal,
      });
      return;
    }
    case 'stop': {
      // A stray (a colour left running by a swap cut short) may be of a third release: named by the app.
      const stopping = deps.docker.stopContainer(containerName(ctx.to.app, step.service, step.release), STOP_TIMEOUT_S);
      // A crew rollback does not wait for a process that ignores SIGTERM: the engine finishes the stop
      // by itself, and the next swap stops it again (a stray) if it still runs.
      await untilAborted(stopping, ctx.opts.signal);
      return;
    }
    case 'remove': {
      const m = manifestOf(ctx, step.release);
      await deps.docker.removeContainer(containerName(m.app, step.service, m.version));
      return;
    }
    case 'flip': {
      const m = step.release ? manifestOf(ctx, step.release) : null;
      // The router holds every app's ports: only this app's routes change.
      const others = (await routerRequest(deps.routerSocket, { op: 'get' })).routes.filter((r) => r.app !== ctx.to.app);
      await routerRequest(deps.routerSocket, {
        op: 'set',
        routes: [...others, ...(m ? await routesFor(deps, m) : [])],
      });
      return;
    }
    case 'commit': {
      deps.store.db.transaction(() => {
        deps.releases.setLive(ctx.to.app, step.release);
        deps.store.setMany({ 'release.previous': ctx.from?.version ?? null, 'release.pending': null });
      })();
      return;
    }
    case 'drain':
      await abortableSleep(step.ms, ctx.opts.signal);
      return;
    case 'prune':
      await prune(deps);
      return;
  }
}

/** P's outcome, or a PreemptedError as soon as the signal aborts (P then goes on by itself, unobserved). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => undefined);
      reject(new PreemptedError(String(signal.reason ?? 'preempted')));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e as Error)),
    );
  });
}

export async function routesFor(deps: Pick<SwapDeps, 'docker'>, m: ReleaseManifest): Promise<Route[]> {
  const routes: Route[] = [];
  for (const [service, spec] of Object.entries(m.services)) {
    if (spec.ports.length === 0) continue;
    const info = await deps.docker.inspectContainer(containerName(m.app, service, m.version));
    if (!info) throw new SwapError(`no container for ${service}@${m.version} to route to`);
    for (const p of spec.ports) {
      const hostPort = info.ports[p.target];
      if (!hostPort) throw new SwapError(`${service}@${m.version} has no host port for ${p.target}`);
      routes.push({
        port: p.published,
        target: { host: '127.0.0.1', port: hostPort },
        app: m.app,
        service,
        release: m.version,
        colour: info.labels[LABELS.colour] ?? 'blue',
      });
    }
  }
  return routes;
}

async function liveColours(deps: SwapDeps, m: ReleaseManifest): Promise<Record<string, Colour>> {
  const out: Record<string, Colour> = {};
  for (const service of Object.keys(m.services)) {
    const info = await deps.docker.inspectContainer(containerName(m.app, service, m.version));
    const c = info?.labels[LABELS.colour];
    if (c === 'blue' || c === 'green') out[service] = c;
  }
  return out;
}

/**
 * Per app, keep the live release and the most recent others up to keepReleases; remove the rest from the
 * engine. An image stays while any release kept on board (of any app) runs it.
 */
async function prune(deps: SwapDeps): Promise<void> {
  const all = deps.releases.list();
  const keep = new Set<string>();
  for (const app of deps.releases.apps())
    all
      .filter((r) => r.app === app && (r.state === 'live' || r.state === 'kept'))
      .sort((a, b) => (b.lastLiveAt ?? 0) - (a.lastLiveAt ?? 0))
      .slice(0, deps.keepReleases)
      .forEach((r) => keep.add(releaseLabel(r)));
  const root = deps.root();
  const keptImages = new Set<string>();
  for (const r of all) {
    // A staged release (on board, waiting for its window) keeps its images too.
    if (!keep.has(releaseLabel(r)) && r.state !== 'staged') continue;
    try {
      for (const s of Object.values(deps.releases.manifest(r.app, r.version, root).services)) keptImages.add(s.imageId);
    } catch {
      continue;
    }
  }
  for (const r of all) {
    if (keep.has(releaseLabel(r)) || r.state === 'staged') continue;
    // A failed release keeps its row (so the shore target is not retried) but loses its containers.
    const keepRow = r.state === 'failed';
    let m: ReleaseManifest | undefined;
    try {
      m = deps.releases.manifest(r.app, r.version, root);
    } catch {
      m = undefined;
    }
    if (m) {
      for (const service of Object.keys(m.services))
        await deps.docker.removeContainer(containerName(m.app, service, m.version));
      for (const s of Object.values(m.services))
        if (!keptImages.has(s.imageId)) await deps.docker.removeImage(s.imageId);
    }
    if (keepRow) continue;
    deps.releases.remove(r.app, r.version);
    deps.log.info({ release: releaseLabel(r) }, 'release pruned from board');
  }
  if (deps.chunks) {
    const referenced = new Set<string>();
    try {
      for (const r of deps.releases.list()) {
        if (r.state === 'failed') continue;
        for (const d of allReleaseChunks(deps.releases.manifest(r.app, r.version, root), deps.chunks).keys())
          referenced.add(d);
      }
    } catch (err) {
      // A damaged index leaves the kept set unknown: collect nothing rather than something still needed.
      deps.log.warn({ reason: errorMessage(err) }, 'chunk collection skipped: a layer index on board does not verify');
      return;
    }
    const gone = deps.chunks.gc(referenced);
    if (gone.files) deps.log.info(gone, 'chunks of releases no longer on board collected');
  }
}

/**
 * After a kill -9 or power cut mid-update: if the router had not flipped, undo (the old release still
 * serves); if it had, finish the remaining steps. Either way exactly one complete release serves.
 */
export async function recoverInterrupted(deps: SwapDeps): Promise<void> {
  const u = deps.journal.running();
  if (!u) return;
  if (u.pid !== process.pid && pidAlive(u.pid, u.pidStart)) return;
  deps.journal.adopt(u.id);
  const root = deps.root();
  // Updates journaled before they named their app: the app of the release they went to.
  const app = u.app || (deps.releases.withVersion(u.to)[0]?.app ?? '');
  const to = deps.releases.manifest(app, u.to, root);
  const from = u.from ? deps.releases.manifest(app, u.from, root) : null;
  const ctx: Ctx = { deps, from, to, id: u.id, opts: {} };
  const steps = deps.journal.steps(u.id);
  const flipped = steps.some((s) => s.phase === 'forward' && s.step.kind === 'flip' && s.done);
  const undoing = steps.some((s) => s.phase === 'undo');
  deps.log.warn({ update: u.id, to: u.to, flipped }, 'recovering an interrupted update');
  if (flipped && !undoing) {
    // Drain time has passed by now; the rest (commit, stop old, prune) is idempotent.
    await runSteps(
      ctx,
      steps.filter((s) => s.phase === 'forward').map((s) => (s.step.kind === 'drain' ? { ...s, done: true } : s)),
    );
    deps.journal.finish(u.id, 'done', 'completed after an interruption');
    // A crew rollback cut short still means the crew chose this release: hold it as the command would have.
    if (u.kind === 'rollback' && u.actor !== 'shore')
      deps.store.set('crew.hold', { sequence: deps.releases.maxSequence(app), app });
    deps.store.event(`${u.kind}.done`, {
      app,
      from: u.from,
      to: u.to,
      actor: u.actor,
      reason: 'completed after an interruption',
    });
    return;
  }
  await undo(ctx, 'interrupted before the switch (agent stopped mid-update)');
}
