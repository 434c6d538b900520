import { createHash } from 'node:crypto';
import { canonicalJson } from '../shared/trust/canonical-json.js';
import { sha256Hex } from '../shared/trust/secrets.js';
import { EMBEDDED_MANIFEST_MAX_BYTES, type DesiredApp, type DesiredState } from '../shared/protocol/bodies.js';
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
  opts: { embedManifest?: boolean; now?: number } = {},
): Promise<{ state: DesiredState; etag: string }> {
  const ctx: DesiredContext = { vessel, store, embedManifest: opts.embedManifest ?? false };
  const state: DesiredState = { vessel: vessel.name, release: null, rootVersion };
  await addTargetRelease(state, ctx);
  await addRolloutParts(state, ctx, opts.now ?? Date.now());
  await addPolicies(state, ctx);
  await addHubTls(state, ctx);
  return { state, etag: desiredEtag(state) };
}

/**
 * 66 bits of the digest in base64url: a validator only tells this vessel's state from its previous one
 * (a false match is a 2^-66 chance per change), and each character saved is saved twice on every poll
 * (the If-None-Match up, the ETag down): 43 bytes fewer than hex.
 */
export function desiredEtag(state: DesiredState): string {
  return `"${createHash('sha256').update(canonicalJson(state)).digest('base64url').slice(0, 11)}"`;
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

// Releases are immutable: the digest of a release's envelope is computed once per hub process. Bounded by
// the number of releases a hub keeps hot; the oldest entry goes first past the cap.
const DIGEST_CACHE_MAX = 4096;
const digests = new Map<number, string>();

async function releaseDigest(ctx: DesiredContext, r: StoredRelease): Promise<{ digest: string; bytes?: Buffer }> {
  const known = digests.get(r.id);
  if (known && !ctx.embedManifest) return { digest: known };
  const bytes = await ctx.store.releases.envelope(r.id);
  if (!bytes) throw new Error(`release ${r.app}@${r.version} has no stored manifest`);
  const digest = sha256Hex(bytes);
  if (digests.size >= DIGEST_CACHE_MAX) digests.delete(digests.keys().next().value!);
  digests.set(r.id, digest);
  return { digest, bytes };
}

/**
 * The targets: `apps[]` (desired state v2, one per app, each named by app, version and manifest digest)
 * and the legacy v1 fields older agents read: `release` (the first app's target, as `apps[0]` without its
 * digest) and, when asked for and small enough, its signed `manifest`.
 */
export async function addTargetRelease(state: DesiredState, ctx: DesiredContext): Promise<void> {
  const targets = await targetReleases(ctx);
  if (targets.length === 0) return;
  state.apps = [];
  for (const { target, release: r } of targets) {
    const { digest, bytes } = await releaseDigest(ctx, r);
    const app: DesiredApp = {
      app: r.app,
      version: r.version,
      sequence: r.sequence,
      digest,
      rolloutId: target.rolloutId,
    };
    if (ctx.embedManifest && bytes && bytes.byteLength <= EMBEDDED_MANIFEST_MAX_BYTES)
      app.manifest = bytes.toString('base64');
    state.apps.push(app);
  }
  const first = state.apps[0]!;
  state.release = { app: first.app, version: first.version, sequence: first.sequence, rolloutId: first.rolloutId ?? 0 };
  if (first.manifest) state.manifest = first.manifest;
}

// The desired state carries at most this many directives (the schema's cap); the newest go first.
const MAX_DIRECTIVES_IN_DESIRED = 16;

/**
 * The rollout parts: the vessel's groups (directives name groups), its maintenance window with where it
 * comes from, the live signed rollback directives that name it, and the download settings the hub sets
 * for it. Each is absent when empty, so a fleet without them keeps its ETags.
 */
export async function addRolloutParts(state: DesiredState, ctx: DesiredContext, now: number): Promise<void> {
  const { vessel, store } = ctx;
  if (vessel.groups.length > 0) state.groups = vessel.groups.slice(0, 64);
  const window = await store.windows.forVessel(vessel.name, vessel.groups);
  if (window) state.window = window;
  const directives = (await store.directives.live(now, 256))
    .filter((d) => {
      const t = d.targets;
      return (
        t.all === true ||
        (t.vessels ?? []).includes(vessel.name) ||
        (t.groups ?? []).some((g) => vessel.groups.includes(g))
      );
    })
    .slice(0, MAX_DIRECTIVES_IN_DESIRED);
  if (directives.length > 0) state.directives = directives.map((d) => d.envelope.toString('base64'));
  const settings = await store.settings.forVessel(vessel.name, vessel.groups);
  if (settings) state.settings = settings;
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

/**
 * The link's part: the signed hub-tls announcement in force (the CAs a vessel pins for its hub), as the
 * hub stored it. Absent until one is published, so a fleet that never rotates keeps its ETags.
 */
export async function addHubTls(state: DesiredState, ctx: DesiredContext): Promise<void> {
  const latest = await ctx.store.hubTls.latest();
  if (latest) state.hubTls = latest.envelope.toString('base64');
}
