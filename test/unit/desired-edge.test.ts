import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syncOnce } from '../../agent/sync.js';
import { openStateStore } from '../../agent/state-store.js';
import { vesselPaths } from '../../agent/config.js';
import { targetsOf } from '../../agent/release/targets.js';
import { createLogger } from '../../shared/log.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { fakeHubClient } from '../helpers/fake-hub-client.js';
import { tempDir } from '../helpers/tmp.js';

/** A hub that answers one desired state (whatever the test says) and accepts status reports. */
function hubAnswering(state: unknown) {
  return fakeHubClient(async (_method, path) => {
    if (path.includes('/desired'))
      return { status: 200, headers: new Headers({ etag: '"x"' }), body: Buffer.from(JSON.stringify(state)) };
    return { status: 204, headers: new Headers(), body: Buffer.alloc(0) };
  });
}

function vessel() {
  const dir = tempDir('tender-edge-');
  const store = openStateStore(vesselPaths(dir));
  const sync = (state: unknown) =>
    syncOnce({
      client: hubAnswering(state),
      store,
      vesselName: 'ship-1',
      rootPath: join(dir, 'root.json'),
      root: { version: 1 } as TrustedRoot,
      log: createLogger('t', 'silent'),
    });
  return { dir, store, sync };
}

const good = { vessel: 'ship-1', release: { app: 'sms', version: '1.0.0', sequence: 1, rolloutId: 1 }, rootVersion: 1 };

describe('a desired state from the network is checked at the edge', () => {
  it.each([
    ['another vessel', { ...good, vessel: 'ship-2' }, /is for vessel "ship-2", not ship-1/],
    [
      'an app name that climbs out of a folder',
      { ...good, release: { ...good.release, app: '../../outside' } },
      /valid APP@VERSION/,
    ],
    ['a version with a slash', { ...good, release: { ...good.release, version: '1.0/../../x' } }, /valid APP@VERSION/],
    ['a version with spaces', { ...good, release: { ...good.release, version: '1 0' } }, /valid APP@VERSION/],
    [
      'one app twice',
      {
        ...good,
        apps: [
          { app: 'sms', version: '1', sequence: 1, digest: 'a'.repeat(64), rolloutId: 1 },
          { app: 'sms', version: '2', sequence: 2, digest: 'b'.repeat(64), rolloutId: 1 },
        ],
      },
      /names app sms twice/,
    ],
  ])('refuses one for %s: not kept, one event, the last good target stays', async (_what, state, reason) => {
    const v = vessel();
    await v.sync(good);
    expect(v.store.get('desired')?.release?.version).toBe('1.0.0');
    await v.sync(state);
    await v.sync(state);
    expect(v.store.get('desired')).toEqual(good);
    const events = v.store.outbox.nextBatch(1000, 1e9).filter((r) => r.source === 'desired.refused');
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.body).reason).toMatch(reason);
  });

  it('refuses app and version names in apps[] that fail their pattern, before anything is written', async () => {
    const v = vessel();
    for (const app of ['../../outside', 'A', 'x/y', '.hidden', '']) {
      const state = { ...good, apps: [{ app, version: '1', sequence: 1, digest: 'a'.repeat(64), rolloutId: 1 }] };
      await expect(v.sync(state)).rejects.toThrow();
    }
    expect(v.store.get('desired')).toBeUndefined();
    expect(readdirSync(v.dir).filter((f) => !/^(agent|outbox)\.db/.test(f))).toEqual([]);
    expect(existsSync(join(v.dir, '..', 'outside'))).toBe(false);
  });

  it('never hands a bad name to the controller, whatever is stored', () => {
    const bad = { ...good, release: { ...good.release, app: '../../outside' } };
    expect(targetsOf(bad)).toEqual([]);
    expect(targetsOf(good).map((t) => `${t.app}@${t.version}`)).toEqual(['sms@1.0.0']);
  });
});
