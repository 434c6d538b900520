import type { FastifyPluginAsync } from 'fastify';
import type { HubDeps } from '../deps.js';
import { actorOf, auditEntry } from '../audit.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { parseWindow } from '../../shared/protocol/maintenance-window.js';
import type { RolloutStartRequest } from '../../shared/protocol/rollout-bodies.js';
import { sha256Hex } from '../../shared/trust/secrets.js';
import { addRoute } from './register.js';
import { RolloutEngineError } from '../rollout/engine.js';
import { DEFAULT_RULES, type Threshold, type WaveRules } from '../rollout/waves.js';
import { directiveForRollout } from '../rollout/directive-intake.js';
import type { HubStore } from '../store/hub-store.js';
import type { RolloutMember } from '../store/rollout-records.js';

/** The wave rules a start request asks for (checked by the engine; the message names the flag). */
export function rulesOf(body: RolloutStartRequest): WaveRules {
  if (body.minSuccessPercent !== undefined && body.maxFailuresPercent !== undefined)
    throw new RolloutEngineError('give --min-success or --max-failures, not both');
  const threshold: Threshold =
    body.maxFailuresPercent !== undefined
      ? { kind: 'max-failures', percent: body.maxFailuresPercent }
      : body.minSuccessPercent !== undefined
        ? { kind: 'min-success', percent: body.minSuccessPercent }
        : DEFAULT_RULES.threshold;
  return {
    waves: body.waves ?? DEFAULT_RULES.waves,
    threshold,
    minDone: body.minDone ?? DEFAULT_RULES.minDone,
    quorumPercent: body.waveQuorumPercent ?? DEFAULT_RULES.quorumPercent,
    deadlineMs: body.waveDeadlineSeconds === undefined ? null : body.waveDeadlineSeconds * 1000,
  };
}

/** A scope that names a vessel must name one that exists (a group may be filled later). */
async function checkScope(store: HubStore, scope: string): Promise<void> {
  if (!scope.startsWith('vessel:')) return;
  const v = await store.vessels.getByName(scope.slice(7));
  if (!v || v.revokedAt !== null) throw new RolloutEngineError(`no vessel named ${scope.slice(7)}`, 'not_found', 404);
}

const memberView = (m: RolloutMember) => ({
  vessel: m.vessel,
  wave: m.wave,
  startedAt: m.startedAt,
  outcome: m.outcome,
  failure: m.failure,
  reason: m.reason,
  progress: m.progress,
  until: m.until,
  reportedAt: m.reportedAt,
  supersededBy: m.supersededBy,
});

/**
 * The rollout API: start (in waves, or a rollback with its signed directive), list, show, pause, resume,
 * abort; maintenance windows and download settings per vessel or group; the draft a publisher signs a
 * rollback directive from. Every refusal is one line (the engine's and the parsers' messages) and
 * changes nothing.
 */
export function rolloutRoutes(deps: HubDeps): FastifyPluginAsync {
  const { store } = deps;
  return async (app) => {
    addRoute(app, ROUTES.startRollout, async (req, reply) => {
      const body = req.body;
      const rules = rulesOf(body);
      const release = await store.releases.find(body.release);
      if (!release) throw new RolloutEngineError(`no release ${body.release} on the hub`, 'not_found', 404);
      const rollback = body.rollback
        ? await directiveForRollout(store, body.rollback.directive, release, body.target, deps.now())
        : undefined;
      const started = await deps.rollouts.start({
        release: `${release.app}@${release.version}`,
        target: body.target,
        rules,
        canary: body.canary ?? [],
        actor: actorOf(req.principal),
        kind: rollback ? 'rollback' : 'release',
        directive: rollback?.directive,
      });
      req.log.info(
        { rollout: started.id, release: `${release.app}@${release.version}`, target: body.target },
        'rollout started',
      );
      return reply.code(201).send({
        id: started.id,
        release: { app: release.app, version: release.version, sequence: release.sequence },
        target: body.target,
        vessels: started.vessels,
        waves: started.waves,
        rollout: started.rollout,
      });
    });

    addRoute(app, ROUTES.listRollouts, async () => ({ rollouts: await store.rollouts.list({ limit: 100 }) }));

    addRoute(app, ROUTES.getRollout, async (req) => {
      const shown = await deps.rollouts.show(req.params.id);
      if (!shown) throw new RolloutEngineError(`no rollout ${req.params.id}`, 'not_found', 404);
      return {
        rollout: shown.rollout,
        waves: shown.waves.map((w) => ({ ...w, vessels: w.vessels.map(memberView) })),
      };
    });

    for (const [route, verb] of [
      [ROUTES.pauseRollout, 'pause'],
      [ROUTES.resumeRollout, 'resume'],
      [ROUTES.abortRollout, 'abort'],
    ] as const)
      addRoute(app, route, async (req) => {
        const id = req.params.id;
        if (!(await store.rollouts.get(id))) throw new RolloutEngineError(`no rollout ${id}`, 'not_found', 404);
        return deps.rollouts[verb](id, actorOf(req.principal));
      });

    addRoute(app, ROUTES.rollbackDraft, async (req) => {
      const release = await store.releases.find(req.query.release);
      if (!release) throw new RolloutEngineError(`no release ${req.query.release} on the hub`, 'not_found', 404);
      const envelope = (await store.releases.envelope(release.id))!;
      return {
        app: release.app,
        version: release.version,
        sequence: release.sequence,
        digest: sha256Hex(envelope),
        counter: await store.directives.nextCounter(release.app),
      };
    });

    addRoute(app, ROUTES.listWindows, async () => ({ windows: await store.windows.list() }));
    addRoute(app, ROUTES.setWindow, async (req) => {
      const { scope, spec } = req.body;
      parseWindow(spec);
      await checkScope(store, scope);
      await store.windows.set(
        { scope, spec, setBy: actorOf(req.principal) },
        deps.now(),
        auditEntry(req.principal, 'window.set', { scope, spec }),
      );
      return { scope, spec };
    });
    addRoute(app, ROUTES.clearWindow, async (req) => {
      const { scope } = req.body;
      const cleared = await store.windows.clear(
        scope,
        deps.now(),
        auditEntry(req.principal, 'window.clear', { scope }),
      );
      return { scope, cleared };
    });

    addRoute(app, ROUTES.listSettings, async () => ({ settings: await store.settings.list() }));
    addRoute(app, ROUTES.setSettings, async (req) => {
      const { scope, settings } = req.body;
      for (const w of settings.downloadWindows ?? []) parseWindow(w);
      await checkScope(store, scope);
      await store.settings.set(
        { scope, settings, setBy: actorOf(req.principal) },
        deps.now(),
        auditEntry(req.principal, 'settings.set', { scope, settings }),
      );
      return { scope, settings };
    });
    addRoute(app, ROUTES.clearSettings, async (req) => {
      const { scope } = req.body;
      const cleared = await store.settings.clear(
        scope,
        deps.now(),
        auditEntry(req.principal, 'settings.clear', { scope }),
      );
      return { scope, cleared };
    });
  };
}
