import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startHub, enrolVessel as enrolInProcess, type TestHub, type TestVessel } from '../helpers/hub.js';
import { publishViaApi } from '../helpers/publish-api.js';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import { composeFile, enrolVessel, freePort, startShore, waitServing, type Shore } from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { desiredStateSchema, type DesiredState } from '../../shared/protocol/bodies.js';
import { paths } from '../../shared/protocol/routes.js';

/**
 * Desired state v2 as the hub emits it from the rollout engine's targets: apps[] per (vessel, app) with
 * the manifest digest, groups, the maintenance window with its source, the live rollback directives that
 * name the vessel, the hub's download settings, and the legacy `release` for older agents. Then a real
 * agent on the real Docker engine runs two apps from one desired state.
 */
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function desired(hub: TestHub, v: TestVessel, manifest = false): Promise<{ state: DesiredState; etag: string }> {
  const path = paths.vesselDesired(v.name, manifest ? { with: 'manifest' } : {});
  const r = await hub.app.inject({ method: 'GET', url: path, headers: v.sign('GET', path).headers });
  expect(r.statusCode, r.body).toBe(200);
  return { state: desiredStateSchema.parse(r.json()), etag: String(r.headers.etag) };
}

describe('desired state v2 from the rollout targets', () => {
  it('carries apps[] with digests, groups, window, directives and settings beside the legacy release', async () => {
    const hub = await startHub();
    const a = await enrolInProcess(hub, 'ship-a', ['north']);
    const b = await enrolInProcess(hub, 'ship-b', ['south']);
    const sms = await publishViaApi(hub, { app: 'sms', version: '1', sequence: 1, target: 'vessel:ship-a' });
    const nav = await publishViaApi(hub, { app: 'nav', version: '7', sequence: 1, target: 'all' });

    const first = await desired(hub, a);
    expect(first.state.apps).toEqual([
      { app: 'nav', version: '7', sequence: 1, digest: sha256(nav.envelope), rolloutId: expect.any(Number) },
      { app: 'sms', version: '1', sequence: 1, digest: sha256(sms.envelope), rolloutId: expect.any(Number) },
    ]);
    // Older agents read only `release`: the first app, without digest.
    expect(first.state.release).toEqual({
      app: 'nav',
      version: '7',
      sequence: 1,
      rolloutId: first.state.apps![0]!.rolloutId,
    });
    expect(first.state.groups).toEqual(['north']);
    expect(first.state.window).toBeUndefined();
    expect(first.state.directives).toBeUndefined();
    expect(first.state.settings).toBeUndefined();
    expect((await desired(hub, b)).state.apps!.map((x) => x.app)).toEqual(['nav']);

    // The manifests ride along when asked for, per app and (legacy) for the first.
    const withManifest = (await desired(hub, a, true)).state;
    expect(
      withManifest.apps!.map((x) =>
        Buffer.from(x.manifest!, 'base64').equals(x.app === 'sms' ? sms.envelope : nav.envelope),
      ),
    ).toEqual([true, true]);
    expect(withManifest.manifest).toBe(withManifest.apps![0]!.manifest);

    // A group's window, with where it comes from; the vessel's own wins; the ETag moves.
    const store = hub.deps.store;
    await store.windows.set({ scope: 'group:north', spec: 'Mon-Thu 02:00-04:00 UTC', setBy: 'ops:t' }, Date.now());
    const windowed = await desired(hub, a);
    expect(windowed.etag).not.toBe(first.etag);
    expect(windowed.state.window).toEqual({ spec: 'Mon-Thu 02:00-04:00 UTC', source: 'group:north' });
    await store.windows.set({ scope: 'vessel:ship-a', spec: 'daily 01:00-02:00', setBy: 'ops:t' }, Date.now());
    expect((await desired(hub, a)).state.window).toEqual({ spec: 'daily 01:00-02:00', source: 'vessel:ship-a' });
    expect((await desired(hub, b)).state.window).toBeUndefined();

    // Download settings the hub sets, field by field the vessel's own over its group's.
    await store.settings.set(
      { scope: 'group:north', settings: { releaseBytesPerSecond: 9000, downloadOnlyWhenCheap: true }, setBy: 'ops:t' },
      Date.now(),
    );
    await store.settings.set(
      { scope: 'vessel:ship-a', settings: { releaseBytesPerSecond: 500 }, setBy: 'ops:t' },
      Date.now(),
    );
    expect((await desired(hub, a)).state.settings).toEqual({ releaseBytesPerSecond: 500, downloadOnlyWhenCheap: true });
    expect((await desired(hub, b)).state.settings).toBeUndefined();

    // A directive reaches only the vessels it names, and only until it expires.
    const sms1 = (await store.releases.find('sms@1'))!;
    const envelope = Buffer.from(`{"signed":"${randomBytes(4).toString('hex')}"}`);
    await store.rollouts.start(
      {
        releaseId: sms1.id,
        target: 'vessel:ship-a',
        createdBy: 'ops:t',
        kind: 'rollback',
        directive: {
          app: 'sms',
          version: '1',
          counter: 1,
          envelope,
          targets: { groups: ['north'] },
          expiresAt: Date.now() + 60_000,
        },
      },
      Date.now(),
    );
    expect((await desired(hub, a)).state.directives).toEqual([envelope.toString('base64')]);
    expect((await desired(hub, b)).state.directives).toBeUndefined();
    hub.deps.now = () => Date.now() + 120_000;
    expect((await desired(hub, a)).state.directives).toBeUndefined();
  });
});

// CLI calls get minutes: the machine these run on is shared, and a loaded one takes long to start node.
const CLI_MS = 180_000;
async function publishAndRollout(shore: Shore, compose: string, version: string, target: string): Promise<void> {
  const p = await tender(
    ['release', 'publish', '--compose', compose, '--key', shore.releaseKey, '--version', version],
    shore.env,
    CLI_MS,
  );
  expect(p.code, p.stderr).toBe(0);
  const app = /^name: (\S+)/.exec(readFileSync(compose, 'utf8'))![1]!;
  const r = await tender(['rollout', 'start', `${app}@${version}`, '--target', target], shore.env, CLI_MS);
  expect(r.code, r.stderr).toBe(0);
}

describe('a real agent runs two apps from one desired state', () => {
  const run = randomBytes(3).toString('hex');
  const apps = { sms: unique('rsms-'), nav: unique('rnav-') };
  afterAll(() => {
    removeAppContainers(apps.sms);
    removeAppContainers(apps.nav);
    execFileSync('docker', ['rmi', '-f', `tender-rollout-${run}/sms:v1`, `tender-rollout-${run}/nav:v1`], {
      stdio: 'ignore',
    });
  });

  it('installs both apps of apps[] and keeps each on its own port', async () => {
    const images = {
      sms: buildBusyboxImage({ tag: `tender-rollout-${run}/sms:v1`, body: 'sms v1\n' }),
      nav: buildBusyboxImage({ tag: `tender-rollout-${run}/nav:v1`, body: 'nav v1\n' }),
    };
    expect(images.sms).toMatch(/^sha256:/);
    const shore = await startShore();
    const vessel = await enrolVessel(shore, `v2-${run}`);
    const ports = { sms: await freePort(), nav: await freePort() };
    const files = {
      sms: composeFile(shore.dir, 'sms', `tender-rollout-${run}/sms:v1`, ports.sms, apps.sms),
      nav: composeFile(shore.dir, 'nav', `tender-rollout-${run}/nav:v1`, ports.nav, apps.nav),
    };
    await vessel.startRouter();
    vessel.startAgent();
    await publishAndRollout(shore, files.sms, '1.0.0', `vessel:${vessel.name}`);
    await publishAndRollout(shore, files.nav, '1.0.0', `vessel:${vessel.name}`);
    await waitServing(ports.sms, 'sms v1', vessel, 90_000);
    await waitServing(ports.nav, 'nav v1', vessel, 90_000);
    // Both apps are reported healthy to the hub in their rollouts (the rollout.outcome events).
    await eventually(async () => {
      const st = await vessel.status();
      return JSON.stringify(st).includes(apps.sms) && JSON.stringify(st).includes(apps.nav);
    }, 30_000);
  }, 600_000);
});
