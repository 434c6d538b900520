import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createController } from '../../agent/release/controller.js';
import { createJournal, processStart, UpdateInProgressError } from '../../agent/release/journal.js';
import { manifestDigest } from '../../agent/release/board-releases.js';
import type { InstallSource } from '../../agent/release/install-source.js';
import { openStateStore, type StateStore } from '../../agent/state-store.js';
import { vesselPaths } from '../../agent/config.js';
import { createLogger } from '../../shared/log.js';
import type { DesiredApp, DesiredState } from '../../shared/protocol/bodies.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { verifyInitialRoot, type TrustedRoot } from '../../shared/trust/root.js';
import { fakeEngine, fakeRouter, signedManifest, type FakeEngine } from '../helpers/fake-engine.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The release controller against an engine in memory and a router socket that keeps its table: which
 * release each app runs, and why, for targets from the network that must be refused or honoured.
 */
interface Board {
  store: StateStore;
  engine: FakeEngine;
  controller: ReturnType<typeof createController>;
  root: TrustedRoot;
  key: PrivateKey;
  /** Manifests the fake hub serves, by APP@VERSION; `fetched` records what was asked for. */
  published: Map<string, Buffer>;
  fetched: string[];
  clock: { now: number };
  /** Make the next transfer wait until the returned function is called. */
  holdTransfer(): () => void;
  publish(
    app: string,
    version: string,
    sequence: number,
    extra?: {
      createdAt?: string;
      services?: string[];
      hostAccess?: { path: string; readOnly: boolean }[];
      drainMs?: number;
    },
  ): DesiredApp;
  events(type?: string): { type: string; data: Record<string, unknown> }[];
  liveOf(app: string): string | undefined;
}

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function board(opts: { vessel?: string; rootExpires?: string } = {}): Promise<Board> {
  const dir = tempDir('tender-controller-');
  const keys = makeKeys(1, 1);
  const root = verifyInitialRoot(
    signedRoot(rootPayloadFor(1, keys, { rootThreshold: 1, expires: opts.rootExpires }), keys.root),
  );
  const store = openStateStore(vesselPaths(dir));
  const engine = fakeEngine();
  const router = await fakeRouter(dir);
  closers.push(() => (router.close(), store.close()));
  const published = new Map<string, Buffer>();
  const fetched: string[] = [];
  const clock = { now: Date.now() };
  let gate: Promise<void> | undefined;
  const source: InstallSource = {
    async fetchManifest(app, version) {
      fetched.push(`${app}@${version}`);
      const b = published.get(`${app}@${version}`);
      if (!b) throw new Error(`no manifest ${app}@${version}`);
      return b;
    },
    async transfer(m: ReleaseManifest) {
      if (gate) await gate;
      for (const s of Object.values(m.services)) engine.images.add(s.imageId);
    },
  };
  const controller = createController({
    vessel: opts.vessel ?? 'ship-1',
    docker: engine.docker,
    store,
    routerSocket: router.socket,
    root: () => root,
    keepReleases: 3,
    watchMs: 0,
    log: createLogger('test', 'silent'),
    source,
    now: () => clock.now,
  });
  const b: Board = {
    store,
    engine,
    controller,
    root,
    key: keys.release[0]!,
    published,
    fetched,
    clock,
    holdTransfer() {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r)).then(() => void (gate = undefined));
      return release;
    },
    publish(app, version, sequence, extra = {}) {
      const { bytes } = signedManifest(keys.release[0]!, { app, version, sequence, ...extra });
      published.set(`${app}@${version}`, bytes);
      return { app, version, sequence, digest: manifestDigest(bytes), rolloutId: 7 };
    },
    events(type) {
      return store.outbox
        .nextBatch(100_000, 1e9)
        .filter((r) => r.kind === 'event')
        .map((r) => ({ type: r.source, data: JSON.parse(r.body) as Record<string, unknown> }))
        .filter((e) => !type || e.type === type);
    },
    liveOf(app) {
      return controller.releases.live(app)?.version;
    },
  };
  return b;
}

const desired = (apps: DesiredApp[], extra: Partial<DesiredState> = {}): DesiredState => ({
  vessel: 'ship-1',
  release: null,
  rootVersion: 1,
  apps,
  ...extra,
});

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function directive(
  key: PrivateKey,
  target: DesiredApp,
  d: { counter: number; vessels?: string[]; groups?: string[]; app?: string; expiresIn?: number; issuedAt?: number },
): string {
  const issued = d.issuedAt ?? Date.now();
  const payload = {
    _type: 'rollback',
    app: d.app ?? target.app,
    version: target.version,
    digest: target.digest,
    sequence: target.sequence,
    targets: { ...(d.vessels && { vessels: d.vessels }), ...(d.groups && { groups: d.groups }) },
    issuedAt: iso(issued),
    expires: iso(issued + (d.expiresIn ?? 3600_000)),
    counter: d.counter,
  };
  return envelopeBytes(signEnvelope('rollback', payload, [key])).toString('base64');
}

describe('releases on board are known by app, version and manifest digest', () => {
  it('fetches the manifest of another app that shares a version, and runs both apps side by side', async () => {
    const b = await board();
    const sms = b.publish('sms', '1.0.2', 5);
    await b.controller.reconcile(desired([sms]));
    expect(b.liveOf('sms')).toBe('1.0.2');
    // zzz@1.0.2 is not sms@1.0.2: its own manifest is fetched, and its first release (#1, below sms's #5) is
    // not an older release of anything.
    const zzz = b.publish('zzz', '1.0.2', 1);
    await b.controller.reconcile(desired([sms, zzz]));
    expect(b.fetched).toEqual(['sms@1.0.2', 'zzz@1.0.2']);
    expect(b.liveOf('zzz')).toBe('1.0.2');
    expect(b.liveOf('sms')).toBe('1.0.2');
    expect([...b.engine.containers.keys()].sort()).toEqual(['tender-sms-portal-1.0.2', 'tender-zzz-portal-1.0.2']);
    const zzz2 = b.publish('zzz', '2.0.0', 2);
    await b.controller.reconcile(desired([sms, zzz2]));
    expect(b.liveOf('zzz')).toBe('2.0.0');
    expect(b.events('update.refused')).toEqual([]);
  });

  it('refuses a target whose digest is not the manifest it fetched, or not the one kept on board', async () => {
    const b = await board();
    const sms = b.publish('sms', '1.0.0', 1);
    await b.controller.reconcile(desired([{ ...sms, digest: 'a'.repeat(64) }]));
    expect(b.liveOf('sms')).toBeUndefined();
    expect(b.events('update.refused')[0]?.data.reason).toMatch(/manifest digest .* is not the target's aaaaaaaaaaaa/);
    const ok = b.publish('sms', '1.0.1', 2);
    await b.controller.reconcile(desired([ok]));
    expect(b.liveOf('sms')).toBe('1.0.1');
    await b.controller.reconcile(desired([{ ...ok, digest: 'b'.repeat(64) }]));
    expect(b.events('update.refused').at(-1)?.data.reason).toMatch(/on board has manifest digest/);
  });
});

describe('going back to a kept release needs a signed rollback directive', () => {
  async function twoLive() {
    const b = await board();
    const v1 = b.publish('sms', '1.0.1', 1);
    const v2 = b.publish('sms', '1.0.2', 2);
    await b.controller.reconcile(desired([v1]));
    await b.controller.reconcile(desired([v2]));
    expect(b.liveOf('sms')).toBe('1.0.2');
    return { b, v1, v2 };
  }

  it(
    'refuses a kept older release named as a normal update, with one event, and ' + 'keeps the newer one live',
    async () => {
      const { b, v1 } = await twoLive();
      await b.controller.reconcile(desired([v1]));
      await b.controller.reconcile(desired([v1]));
      expect(b.liveOf('sms')).toBe('1.0.2');
      const refused = b.events('rollback.refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]!.data.reason).toMatch(/return to kept release sms@1.0.1 refused: no signed rollback directive/);
      expect(b.events('rollout.outcome').at(-1)?.data).toMatchObject({
        version: '1.0.1',
        outcome: 'failed',
        failure: 'refused',
      });
    },
  );

  it('accepts a valid directive for this vessel, then refuses the same directive replayed later', async () => {
    const { b, v1, v2 } = await twoLive();
    const d = directive(b.key, v1, { counter: 3, vessels: ['ship-1'] });
    await b.controller.reconcile(desired([v1], { directives: [d] }));
    expect(b.liveOf('sms')).toBe('1.0.1');
    expect(b.events('rollback.accepted')[0]?.data).toMatchObject({ app: 'sms', release: '1.0.1', counter: 3 });
    // Forward again, then the old directive once more: a replay.
    await b.controller.reconcile(desired([v2]));
    expect(b.liveOf('sms')).toBe('1.0.2');
    await b.controller.reconcile(desired([v1], { directives: [d] }));
    expect(b.liveOf('sms')).toBe('1.0.2');
    expect(b.events('rollback.refused').at(-1)?.data.reason).toMatch(
      /replayed: counter at or below the last accepted \(#3\)/,
    );
  });

  it('accepts one naming a group of this vessel', async () => {
    const { b, v1 } = await twoLive();
    const d = directive(b.key, v1, { counter: 1, groups: ['north'] });
    await b.controller.reconcile(desired([v1], { directives: [d], groups: ['north'] }));
    expect(b.liveOf('sms')).toBe('1.0.1');
  });

  it.each([
    [
      'expired',
      { counter: 1, vessels: ['ship-1'], issuedAt: Date.now() - 7200_000, expiresIn: 3600_000 },
      /expired at/,
    ],
    ['for another vessel', { counter: 1, vessels: ['ship-2'] }, /does not name this vessel \(ship-1\)/],
    ['for another group', { counter: 1, groups: ['south'] }, /does not name this vessel/],
    ['for another app', { counter: 1, vessels: ['ship-1'], app: 'zzz' }, /is for app zzz, not sms/],
  ])('refuses a directive %s, with an event', async (_what, d, reason) => {
    const { b, v1 } = await twoLive();
    await b.controller.reconcile(desired([v1], { directives: [directive(b.key, v1, d)], groups: ['north'] }));
    expect(b.liveOf('sms')).toBe('1.0.2');
    expect(b.events('rollback.refused').at(-1)?.data.reason).toMatch(reason);
  });

  it('refuses a directive signed by a key the root does not trust, or naming another release', async () => {
    const { b, v1, v2 } = await twoLive();
    const stranger = directive(generateKey().key, v1, { counter: 1, vessels: ['ship-1'] });
    await b.controller.reconcile(desired([v1], { directives: [stranger] }));
    expect(b.events('rollback.refused').at(-1)?.data.reason).toMatch(/unknown or unauthorised keys/);
    const other = directive(b.key, v2, { counter: 2, vessels: ['ship-1'] });
    await b.controller.reconcile(desired([v1], { directives: [other] }));
    expect(b.events('rollback.refused').at(-1)?.data.reason).toMatch(/names another release/);
    expect(b.liveOf('sms')).toBe('1.0.2');
  });

  it('measures expiry on the corrected clock, not the vessel clock', async () => {
    const { b, v1 } = await twoLive();
    const d = directive(b.key, v1, { counter: 1, vessels: ['ship-1'] });
    b.clock.now = Date.now() + 2 * 3600_000;
    await b.controller.reconcile(desired([v1], { directives: [d] }));
    expect(b.liveOf('sms')).toBe('1.0.2');
    expect(b.events('rollback.refused').at(-1)?.data.reason).toMatch(/expired/);
  });
});

describe('one signed manifest cannot freeze an app or the vessel time', () => {
  it('refuses a huge sequence; the next valid release of the app still installs', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]));
    for (const [version, seq] of [
      ['6.6.6', 2 ** 53 - 1],
      ['7.7.7', 2 ** 40 + 1],
      ['8.8.8', 5_000_000],
    ] as const) {
      await b.controller.reconcile(desired([b.publish('sms', version, seq)]));
      expect(b.liveOf('sms')).toBe('1.0.0');
    }
    expect(b.events('update.refused').map((e) => e.data.reason)).toEqual([
      expect.stringMatching(/6.6.6 refused: .*sequence/),
      expect.stringMatching(/7.7.7 refused: .*sequence/),
      expect.stringMatching(/8.8.8 refused: sequence 5000000 jumps more than 1000000/),
    ]);
    await b.controller.reconcile(desired([b.publish('sms', '1.1.0', 2)]));
    expect(b.liveOf('sms')).toBe('1.1.0');
  });

  it(
    'refuses a far-future creation time without lifting the time floor; a poisoned ' + 'floor does not expire the root',
    async () => {
      const b = await board({ rootExpires: iso(Date.now() + 30 * 86400_000) });
      await b.controller.reconcile(desired([b.publish('sms', '9.9.9', 1, { createdAt: '9999-12-31T00:00:00Z' })]));
      expect(b.liveOf('sms')).toBeUndefined();
      expect(b.events('update.refused')[0]?.data.reason).toMatch(/created 9999-12-31T00:00:00Z, more than 24 h after/);
      expect(b.store.get('time.floor') ?? 0).toBeLessThanOrEqual(Date.now() + 1000);
      // A floor written by an agent before the bound (year 9999) counts for no more than the allowed lead.
      b.store.set('time.floor', Date.parse('9999-12-31T00:00:00Z'));
      await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 2)]));
      expect(b.liveOf('sms')).toBe('1.0.0');
    },
  );

  it('checks root expiry against the corrected clock', async () => {
    const b = await board({ rootExpires: iso(Date.now() + 3600_000) });
    // The vessel clock is fine; the corrected clock (the hub's) says the root expired.
    b.clock.now = Date.now() + 2 * 3600_000;
    await expect(b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]))).rejects.toThrow(/expired/);
    expect(b.liveOf('sms')).toBeUndefined();
    b.clock.now = Date.now();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]));
    expect(b.liveOf('sms')).toBe('1.0.0');
  });
});

describe('container names are injective', () => {
  it('gives 1.0+x and 1.0_x, and apps and services with dashes, containers of their own', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0+x', 1)]));
    await b.controller.reconcile(desired([b.publish('sms', '1.0_x', 2)]));
    expect(b.liveOf('sms')).toBe('1.0_x');
    // Both containers exist (the old colour is kept for rollback), under different names.
    expect([...b.engine.containers.keys()].sort()).toEqual(['tender-sms-portal-1.0_px', 'tender-sms-portal-1.0_ux']);
    await b.controller.reconcile(
      desired([b.publish('a-b', '1', 1, { services: ['c'] }), b.publish('a', '1', 1, { services: ['b-c'] })]),
    );
    expect(b.liveOf('a-b')).toBe('1');
    expect(b.liveOf('a')).toBe('1');
    expect(b.engine.containers.has('tender-a_db-c-1')).toBe(true);
    expect(b.engine.containers.has('tender-a-b_dc-1')).toBe(true);
  });

  it('refuses a swap whose container name is taken by another container before anything stops', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]));
    await b.engine.docker.createContainer({
      name: 'tender-sms-portal-2.0.0',
      image: 'busybox',
      labels: { 'io.tender.app': 'other' },
      env: {},
      command: null,
      ports: [],
      mounts: [],
      restart: 'no',
      healthcheck: null,
    });
    b.engine.calls.length = 0;
    await expect(b.controller.reconcile(desired([b.publish('sms', '2.0.0', 2)]))).rejects.toThrow(
      /container name tender-sms-portal-2.0.0 .* is taken by .*refused before anything stopped/,
    );
    expect(b.engine.calls).toEqual([]);
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.engine.containers.get('tender-sms-portal-1.0.0')?.running).toBe(true);
  });
});

describe('the switch waits for the maintenance window; the crew can apply now', () => {
  // Monday 2026-11-30 01:00 UTC; the window opens at 02:00.
  const MON_0100 = Date.parse('2026-11-30T01:00:00Z');
  const window = { spec: 'Mon-Thu 02:00-04:00 UTC', source: 'group:north' };
  const createdAt = iso(MON_0100 - 3600_000);

  it('downloads outside the window, switches only once it opens, and reports waiting-for-window until T', async () => {
    const b = await board();
    b.clock.now = MON_0100;
    const v1 = b.publish('sms', '1.0.0', 1, { createdAt });
    await b.controller.reconcile(desired([v1]));
    const v2 = b.publish('sms', '2.0.0', 2, { createdAt });
    await b.controller.reconcile(desired([v2], { window }));
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.engine.images.size).toBe(2);
    const outcomes = b.events('rollout.outcome').map((e) => e.data);
    expect(outcomes.slice(-2)).toEqual([
      expect.objectContaining({ version: '2.0.0', outcome: 'downloading' }),
      expect.objectContaining({ version: '2.0.0', outcome: 'waiting-for-window', until: '2026-11-30T02:00:00.000Z' }),
    ]);
    expect(b.store.get('release.lastResult')?.reason).toMatch(/waiting for window .* until 2026-11-30T02:00/);
    b.clock.now = MON_0100 + 30 * 60_000;
    await b.controller.reconcile(desired([v2], { window }));
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.events('rollout.outcome')).toHaveLength(outcomes.length);
    b.clock.now = MON_0100 + 61 * 60_000;
    await b.controller.reconcile(desired([v2], { window }));
    expect(b.liveOf('sms')).toBe('2.0.0');
    expect(b.events('rollout.outcome').at(-1)?.data).toMatchObject({ version: '2.0.0', outcome: 'installed-healthy' });
  });

  it('switches a pending release at once when the crew applies it, with an event', async () => {
    const b = await board();
    b.clock.now = MON_0100;
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1, { createdAt })]));
    const v2 = b.publish('sms', '2.0.0', 2, { createdAt });
    b.store.set('desired', desired([v2], { window }));
    await b.controller.reconcile(b.store.get('desired'));
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(await b.controller.apply(undefined, 'crew')).toEqual({ app: 'sms', version: '2.0.0', switched: true });
    expect(b.liveOf('sms')).toBe('2.0.0');
    expect(b.events('apply')[0]?.data).toMatchObject({ app: 'sms', release: '2.0.0', by: 'crew' });
  });
});

describe('crew actions and downloads', () => {
  it('a crew rollback does not wait for a download, and a hold made during it wins when it ends', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]));
    await b.controller.reconcile(desired([b.publish('sms', '2.0.0', 2)]));
    const release = b.holdTransfer();
    const v3 = b.publish('sms', '3.0.0', 3);
    b.store.set('desired', desired([v3]));
    const update = b.controller.reconcile(desired([v3]));
    await new Promise((r) => setTimeout(r, 50));
    const rolled = await Promise.race([
      b.controller.rollback(undefined, 'crew'),
      new Promise((r) => setTimeout(() => r('waited behind the download'), 5000)),
    ]);
    expect(rolled).toMatchObject({ from: '2.0.0', to: '1.0.0' });
    release();
    await update;
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.store.get('crew.hold')).toMatchObject({ app: 'sms', sequence: 3 });
    expect(b.events('rollout.outcome').at(-1)?.data).toMatchObject({ version: '3.0.0', outcome: 'held' });
  });
});

describe('a crew rollback preempts the running swap (issue 19)', () => {
  it('cuts short the drain of an update, says so, and serves the previous release', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1, { drainMs: 30_000 })]));
    const v2 = b.publish('sms', '2.0.0', 2, { drainMs: 30_000 });
    b.store.set('desired', desired([v2]));
    const t0 = Date.now();
    const update = b.controller.reconcile(desired([v2]));
    for (let i = 0; i < 100 && b.liveOf('sms') !== '2.0.0'; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    const lines: string[] = [];
    const r = await b.controller.rollback(undefined, 'crew', { progress: (l) => lines.push(l) });
    expect(r).toMatchObject({ from: '2.0.0', to: '1.0.0', cutShort: 'the drain after the update to 2.0.0' });
    expect(lines[0]).toBe('rolling back now; cutting short the drain after the update to 2.0.0');
    expect(lines).toContain('router switched to 1.0.0 (0.0s)');
    await update;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.controller.journal.recent(2).map((u) => [u.kind, u.state, u.reason])).toEqual([
      ['rollback', 'running', null],
      ['update', 'done', 'cut short: crew rollback to sms@1.0.0 by crew'],
    ]);
  });
});

describe('drift repair keeps the live release running', () => {
  it('makes again a live container that is missing, starts one that exited, replaces one not its own', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1, { services: ['portal', 'db'] })]));
    expect(await b.controller.repairDrift()).toBe(0);
    b.engine.containers.delete('tender-sms-portal-1.0.0');
    b.engine.containers.get('tender-sms-db-1.0.0')!.running = false;
    expect(await b.controller.repairDrift()).toBe(2);
    expect(b.engine.containers.get('tender-sms-portal-1.0.0')?.running).toBe(true);
    expect(b.engine.containers.get('tender-sms-db-1.0.0')?.running).toBe(true);
    // Something else under the live container's name: removed, and the release's own made again.
    const imposter = b.engine.containers.get('tender-sms-portal-1.0.0')!;
    imposter.labels = { 'io.tender.app': 'someone-else' };
    expect(await b.controller.repairDrift()).toBe(1);
    expect(b.engine.containers.get('tender-sms-portal-1.0.0')?.labels['io.tender.release']).toBe('1.0.0');
    expect(b.events('drift.repaired').map((e) => [e.data.service, e.data.problem, e.data.restarts])).toEqual([
      ['db', 'exited with code 0', 1],
      ['portal', 'missing', 1],
      ['portal', 'replaced by a container not its own', 2],
    ]);
    expect(b.store.get('drift.restarts')).toEqual({ 'sms/portal': 2, 'sms/db': 1 });
  });

  it('repairs the release the crew holds, not the shore target, and leaves a swap or a backup alone', async () => {
    const b = await board();
    await b.controller.reconcile(desired([b.publish('sms', '1.0.0', 1)]));
    const v2 = b.publish('sms', '2.0.0', 2);
    await b.controller.reconcile(desired([v2]));
    await b.controller.rollback(undefined, 'crew');
    b.store.set('desired', desired([v2]));
    b.engine.containers.delete('tender-sms-portal-1.0.0');
    expect(await b.controller.repairDrift()).toBe(1);
    expect(b.liveOf('sms')).toBe('1.0.0');
    expect(b.engine.containers.get('tender-sms-portal-1.0.0')?.running).toBe(true);
    // An update journaled as running (another process mid-swap): no repair.
    b.engine.containers.delete('tender-sms-portal-1.0.0');
    const id = b.controller.journal.begin('update', 'sms', '1.0.0', '2.0.0', 'test', []);
    expect(await b.controller.repairDrift()).toBe(0);
    b.controller.journal.finish(id, 'failed', 'test');
    expect(await b.controller.repairDrift()).toBe(1);
  });
});

describe('what a release may touch on the host is logged and shown before it runs (ATTACKS.md 42)', () => {
  it('raises release.host-access when it accepts such a release; the console reads it per kept release', async () => {
    const b = await board();
    const plain = b.publish('sms', '1.0.0', 1);
    await b.controller.reconcile(desired([plain]));
    expect(b.events('release.host-access')).toEqual([]);
    expect(b.controller.hostAccess('sms', '1.0.0')).toEqual([]);
    const sock = b.publish('sms', '1.0.1', 2, {
      hostAccess: [
        { path: '/var/run/docker.sock', readOnly: false },
        { path: '/etc', readOnly: true },
      ],
    });
    await b.controller.reconcile(desired([sock]));
    expect(b.liveOf('sms')).toBe('1.0.1');
    const [e] = b.events('release.host-access');
    expect(e?.data).toEqual({
      app: 'sms',
      release: '1.0.1',
      hostAccess: ['portal: /etc ro', 'portal: /var/run/docker.sock rw'],
    });
    expect(b.controller.hostAccess('sms', '1.0.1')).toEqual(['portal: /etc ro', 'portal: /var/run/docker.sock rw']);
    expect(b.controller.hostAccess('sms', '9.9.9')).toBeUndefined();
  });
});

describe('an update another process began (the running agent, while a crew command reconciles)', () => {
  it('is refused as in progress and recorded as no failure; applied once that update ends', async () => {
    const b = await board();
    const v1 = b.publish('sms', '1.0.0', 1);
    await b.controller.reconcile(desired([v1]));
    const v2 = b.publish('sms', '2.0.0', 2);
    const other = createJournal(b.store.db);
    const id = other.begin('update', 'sms', '1.0.0', '2.0.0', 'agent', []);
    // Begun by another live process (recovery leaves a live process's update alone).
    const agent = spawn('sleep', ['60'], { stdio: 'ignore' });
    closers.push(() => agent.kill());
    await new Promise((r) => setTimeout(r, 100));
    b.store.db
      .prepare('UPDATE updates SET pid = ?, pid_start = ? WHERE id = ?')
      .run(agent.pid!, processStart(agent.pid!), id);
    await expect(b.controller.reconcile(desired([v2]))).rejects.toThrow(UpdateInProgressError);
    expect(b.store.get('release.lastResult')).not.toMatchObject({ version: '2.0.0', result: 'failed' });
    expect(b.events('rollout.outcome').filter((e) => e.data.outcome === 'failed')).toEqual([]);
    expect(b.liveOf('sms')).toBe('1.0.0');
    other.finish(id, 'done', null);
    await b.controller.reconcile(desired([v2]));
    expect(b.liveOf('sms')).toBe('2.0.0');
  });
});
