import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncOnce } from '../../agent/sync.js';
import { openStateStore, type StateStore } from '../../agent/state-store.js';
import { vesselPaths } from '../../agent/config.js';
import { HubClient } from '../../agent/hub-client.js';
import { LinkMeter } from '../../agent/link-meter.js';
import { createBoardReleases } from '../../agent/release/board-releases.js';
import { containerName } from '../../agent/release/runtime.js';
import { createDockerEngine } from '../../shared/docker.js';
import { createLogger } from '../../shared/log.js';
import { verifyInitialRoot, type TrustedRoot } from '../../shared/trust/root.js';
import { paths } from '../../shared/protocol/routes.js';
import type { VesselView } from '../../shared/protocol/bodies.js';
import { enrolVessel, startHub, type TestHub, type TestVessel } from '../helpers/hub.js';
import { signedManifest } from '../helpers/fake-engine.js';
import { buildBusyboxImage } from '../helpers/images.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Status report v2 end to end: a vessel's state store with a live release whose container runs on the
 * real Docker engine, the agent's sync (real HubClient over HTTP) against a real in-process hub on SQLite.
 * What the hub keeps must follow what the engine says: a container removed is `missing`, never green.
 */
const RUN = randomBytes(4).toString('hex');
const APP = `pagestat${RUN}`;
const IMAGE = `tender-page-test/${APP}:v1`;

let hub: TestHub;
let url: string;
let vessel: TestVessel;
let store: StateStore;
let root: TrustedRoot;
let client: HubClient;

const docker = createDockerEngine();
const sync = () =>
  syncOnce({
    client,
    store,
    vesselName: vessel.name,
    rootPath: '/nonexistent',
    root,
    log: createLogger('test', 'silent'),
    docker,
  });

async function view(): Promise<VesselView> {
  const r = await fetch(`${url}${paths.vessel(vessel.name)}`, {
    headers: { authorization: `Bearer ${hub.token('viewer')}` },
  });
  expect(r.status).toBe(200);
  return (await r.json()) as VesselView;
}

beforeAll(() => {
  buildBusyboxImage({ tag: IMAGE, body: 'v1\n' });
}, 60_000);

afterAll(() => {
  execFileSync('docker', ['rm', '-f', containerName(APP, 'portal', '1.0.0')], { stdio: 'ignore' });
  execFileSync('docker', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
});

describe('status report v2', () => {
  it('reports what the engine says of each service, the pending release and why, the hold and the link', async () => {
    hub = await startHub();
    url = await hub.listen();
    vessel = await enrolVessel(hub, `ship-${RUN}`);
    root = verifyInitialRoot(hub.rootBytes);
    store = openStateStore(vesselPaths(tempDir()));
    client = new HubClient(url, vessel.id, vessel.key, 0, () => {}, new LinkMeter());

    // 1.0.0 live on board, its container running on the real engine.
    const v1 = signedManifest(hub.keys.release[0]!, { app: APP, version: '1.0.0', sequence: 1 });
    const board = createBoardReleases(store.db);
    board.add(v1.manifest, v1.bytes);
    board.setLive(APP, '1.0.0');
    execFileSync('docker', ['run', '-d', '--name', containerName(APP, 'portal', '1.0.0'), IMAGE], {
      stdio: 'ignore',
    });
    // Shore wants 1.0.1; the crew holds 1.0.0.
    const v2 = signedManifest(hub.keys.release[0]!, { app: APP, version: '1.0.1', sequence: 2 });
    await hub.rollout(await hub.publish(v2.bytes), `vessel:${vessel.name}`);
    store.set('crew.hold', { sequence: 2, app: APP });

    // A new target: the report travels beside the download, not awaited by the sync.
    expect((await sync()).changed).toBe(true);
    let v = await view();
    for (let i = 0; i < 100 && !v.status; i++) {
      await new Promise((r) => setTimeout(r, 50));
      v = await view();
    }
    expect(v.status?.services).toEqual([
      expect.objectContaining({ name: 'portal', app: APP, release: '1.0.0', state: 'running' }),
    ]);
    expect(v.status?.apps).toEqual([
      { app: APP, live: '1.0.0', desired: '1.0.1', pending: { version: '1.0.1', state: 'held' }, held: true },
    ]);
    expect(v.status?.hold).toEqual({ app: APP, sequence: 2 });
    expect(v.status?.link?.state).toBe('up');
    expect(v.status?.link?.bytesUp24h).toBeGreaterThan(200);
    expect(v.status?.link?.rttMs).not.toBeNull();
    expect(v.statusAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(v.statusReceivedAt).toBeTruthy();
    const firstAt = v.statusReceivedAt;

    // Nothing changed: no new report (the meter's counters alone do not make one).
    await new Promise((r) => setTimeout(r, 20));
    await sync();
    expect((await view()).statusReceivedAt).toBe(firstAt);

    // The container is gone: the next report says so at once.
    execFileSync('docker', ['rm', '-f', containerName(APP, 'portal', '1.0.0')], { stdio: 'ignore' });
    await sync();
    v = await view();
    expect(v.status?.services).toEqual([expect.objectContaining({ name: 'portal', app: APP, state: 'missing' })]);
    expect(v.statusReceivedAt).not.toBe(firstAt);

    // Stopped with an exit code: exited, with the code.
    const ran = spawnSync('docker', [
      'run',
      '--name',
      containerName(APP, 'portal', '1.0.0'),
      IMAGE,
      'sh',
      '-c',
      'exit 3',
    ]);
    expect(ran.status).toBe(3);
    await sync();
    v = await view();
    expect(v.status?.services).toEqual([expect.objectContaining({ name: 'portal', state: 'exited', exitCode: 3 })]);
    store.close();
  }, 60_000);
});
