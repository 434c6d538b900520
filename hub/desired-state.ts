import { canonicalJson } from '../shared/trust/canonical-json.js';
import { sha256Hex } from '../shared/trust/secrets.js';
import { EMBEDDED_MANIFEST_MAX_BYTES, type DesiredState } from '../shared/protocol/bodies.js';
import type { HubStore, StoredRelease, Vessel } from './store/hub-store.js';
import type { VesselTarget } from './store/rollout-records.js';

/** What each part of the desired state is given: the vessel, the store and what the request asked for. */
export interface DesiredContext {
  vessel: Vessel;
  store: HubStore;
  embedManifest: boolean;
}

/**
 * What a vessel should be running, composed of small parts, each filling in its own fields: the target
 * release (with the legacy v1 `release`/`manifest` fields older agents read), and next to it apps,
 * window and directives (rollouts), policies (backups) and settings (the page) — one function each,
 * called in turn below. The ETag is a digest of the canonical form, so a vessel that polls with
 * If-None-Match gets a 304 and no body when nothing changed.
 */
export async function desiredStateOf(
  vessel: Vessel,
  rootVersion: number,
  store: HubStore,
  opts: { embedManifest?: boolean } = {},
): Promise<{ state: DesiredState; etag: string }> {
  const ctx: DesiredContext = { vessel, store, embedManifest: opts.embedManifest ?? false };
  const state: DesiredState = { vessel: vessel.name, release: null, rootVersion };
  await addTargetRelease(state, ctx);
  await addPolicies(state, ctx);
  return { state, etag: desiredEtag(state) };
}

export function desiredEtag(state: DesiredState): string {
  return `"${sha256Hex(canonicalJson(state)).slice(0, 32)}"`;
}

/** The vessel's targets (one per app, by app) with their releases. */
export async function targetReleases(ctx: DesiredContext): Promise<{ target: VesselTarget; release: StoredRelease }[]> {
  const out: { target: VesselTarget; release: StoredRelease }[] = [];
  for (const target of await ctx.store.rollouts.targetsOf(ctx.vessel.id)) {
    const release = await ctx.store.releases.get(target.releaseId);
    if (release) out.push({ target, release });
  }
  return out;
}

/**
 * Legacy v1 fields: `release` (the first app's target, as `apps[0]`) and, when asked for and small
 * enough, its signed `manifest`.
 */
export async function addTargetRelease(state: DesiredState, ctx: DesiredContext): Promise<void> {
  const t = (await targetReleases(ctx))[0];
  if (!t) return;
  const r = t.release;
  state.release = { app: r.app, version: r.version, sequence: r.sequence, rolloutId: t.target.rolloutId };
  if (ctx.embedManifest) {
    const bytes = await ctx.store.releases.envelope(r.id);
    if (bytes && bytes.byteLength <= EMBEDDED_MANIFEST_MAX_BYTES) state.manifest = bytes.toString('base64');
  }
}

// The desired state carries at most this many policies (the schema's cap); a fleet has a handful.
const MAX_POLICIES_IN_DESIRED = 32;

/**
 * Backup's part of the desired state: the signed policies for this vessel, as base64 envelopes (the hub
 * stores them as published; the vessel verifies each against its root, as `tender policy install` does).
 * Absent when there are none, so a fleet without policies keeps its ETags.
 */
export async function addPolicies(state: DesiredState, ctx: DesiredContext): Promise<void> {
  const list = await ctx.store.policies.forVessel({ name: ctx.vessel.name, groups: ctx.vessel.groups });
  if (list.length === 0) return;
  state.policies = list.slice(0, MAX_POLICIES_IN_DESIRED).map((p) => p.envelope.toString('base64'));
}
