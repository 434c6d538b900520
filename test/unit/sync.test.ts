import { describe, expect, it } from 'vitest';
import { syncOnce } from '../../agent/sync.js';
import { openStateStore } from '../../agent/state-store.js';
import { vesselPaths } from '../../agent/config.js';
import { createLogger } from '../../shared/log.js';
import type { TrustedRoot } from '../../shared/trust/root.js';
import { tempDir } from '../helpers/tmp.js';
import { createBoardReleases } from '../../agent/release/board-releases.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { fakeHubClient } from '../helpers/fake-hub-client.js';
import { paths } from '../../shared/protocol/routes.js';

/** A hub whose desired state is fixed and whose status route answers only when the test lets it. */
function fakeHub(release: { app: string; version: string; sequence: number; rolloutId: number } | null) {
  let letStatusThrough!: () => void;
  const statusGate = new Promise<void>((r) => (letStatusThrough = r));
  const calls: string[] = [];
  const client = fakeHubClient(async (method, path, opts) => {
    calls.push(`${method} ${path}`);
    if (path.includes('/desired')) {
      const etag = `"${release?.version ?? 'none'}"`;
      if (opts.headers?.['if-none-match'] === etag)
        return { status: 304, headers: new Headers({ etag }), body: Buffer.alloc(0) };
      return {
        status: 200,
        headers: new Headers({ etag: `"${release?.version ?? 'none'}"` }),
        body: Buffer.from(JSON.stringify({ vessel: 'ship', release, rootVersion: 1 })),
      };
    }
    await statusGate;
    return { status: 204, headers: new Headers(), body: Buffer.alloc(0) };
  });
  return { client, calls, letStatusThrough };
}

describe('sync with the hub', () => {
  it('starts on a new target without waiting for its status report; otherwise reports before returning', async () => {
    const store = openStateStore(vesselPaths(tempDir()));
    const root = { version: 1 } as TrustedRoot;
    const deps = (client: unknown) => ({
      client: client as never,
      store,
      vesselName: 'ship',
      rootPath: '/nonexistent',
      root,
      log: createLogger('t', 'silent'),
    });
    const hub = fakeHub({ app: 'sms', version: '2.0.0', sequence: 2, rolloutId: 1 });
    // The status route hangs: a new target is returned regardless, the report still on its way. It goes
    // once the download's first request is out (that one takes the warm connection).
    const first = await syncOnce(deps(hub.client));
    expect(first.changed).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(hub.calls).toEqual([`GET ${paths.vesselDesired('ship', { with: 'manifest' })}`]);
    void hub.client.createPack('ship', 'sms@2.0.0', ['a'.repeat(64)]).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    expect(hub.calls).toEqual([
      `GET ${paths.vesselDesired('ship', { with: 'manifest' })}`,
      `POST ${paths.vesselPacks('ship')}`,
      `POST ${paths.vesselStatus('ship')}`,
    ]);
    hub.letStatusThrough();
    await new Promise((r) => setTimeout(r, 10));
    expect(store.get('status.lastReport')).toBeTruthy();
    // Nothing new, a status that changed: the report is part of the exchange.
    const board = createBoardReleases(store.db);
    board.add({ app: 'sms', version: '2.0.0', sequence: 2 } as ReleaseManifest, Buffer.alloc(0));
    board.setLive('sms', '2.0.0');
    const quiet = fakeHub({ app: 'sms', version: '2.0.0', sequence: 2, rolloutId: 1 });
    let done = false;
    const second = syncOnce(deps(quiet.client)).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    quiet.letStatusThrough();
    expect((await second).changed).toBe(false);
    // A new state whose release is on board (nothing to fetch): the report goes at once.
    store.set('desired.etag', '');
    // (and a report due: the last one is forgotten)
    store.set('status.lastReport', null);
    const same = fakeHub({ app: 'sms', version: '2.0.0', sequence: 2, rolloutId: 1 });
    same.letStatusThrough();
    expect((await syncOnce(deps(same.client))).changed).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(same.calls).toContain(`POST ${paths.vesselStatus('ship')}`);
    // A release to fetch whose download does not start (a window, a cheap link awaited): a moment later.
    store.set('status.lastReport', null);
    const third = fakeHub({ app: 'sms', version: '3.0.0', sequence: 3, rolloutId: 2 });
    third.letStatusThrough();
    expect((await syncOnce(deps(third.client))).changed).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(third.calls).not.toContain(`POST ${paths.vesselStatus('ship')}`);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(third.calls).toContain(`POST ${paths.vesselStatus('ship')}`);
    store.close();
  });
});
