import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openSqliteHubStore } from '../../hub/store/sqlite/sqlite-hub-store.js';
import { HUB_MIGRATIONS } from '../../hub/store/migrations.js';
import { telemetryRecordsFromWire } from '../../hub/store/telemetry-records.js';
import { encodeBatch, type WireRecord } from '../../shared/protocol/telemetry-wire.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { describeHubStore } from '../store/hub-store-suite.js';
import { newToken, publicKey, T0 } from '../store/fixtures.js';
import { enrolVessel, startHub } from '../helpers/hub.js';
import { storeLayer, tarOf } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';
import { paths } from '../../shared/protocol/routes.js';

describeHubStore('sqlite', async () => {
  const dir = tempDir('tender-hub-store-');
  return { store: openSqliteHubStore(dir), another: async () => openSqliteHubStore(dir) };
});

const WORKER = fileURLToPath(new URL('../store/claim-race-worker.ts', import.meta.url));
// Eight node processes (each compiling TypeScript through tsx) starting on a shared, loaded 2-core machine
// can take minutes to say ready; the race itself, once they are, takes well under a second. Both are only
// bounds on a hang, and each says which it was.
const START_TIMEOUT_MS = 240_000;
const RACE_TIMEOUT_MS = 45_000;

describe('hub store (sqlite only)', () => {
  it('keeps the database in WAL mode with the hub schema', async () => {
    const dir = tempDir('tender-hub-store-');
    const store = openSqliteHubStore(dir);
    await store.vessels.create({ name: 'ship-a', groups: [] }, T0);
    const db = new Database(join(dir, 'hub.db'), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.prepare('SELECT MAX(id) AS id FROM schema_migrations').get()).toEqual({
        id: HUB_MIGRATIONS.at(-1)!.id,
      });
    } finally {
      db.close();
      await store.close();
    }
    expect(existsSync(join(dir, 'chunks'))).toBe(true);
  });

  it('reads what the running hub wrote through its routes and its store, beside it', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-a', ['north']);
    const stored = storeLayer(tarOf([{ name: 'a.bin', data: Buffer.alloc(50_000, 7) }]), hub.chunkFiles);
    const m: ReleaseManifest = {
      _type: 'release',
      spec: 1,
      app: 'sms',
      version: '1.0',
      sequence: 1,
      createdAt: '2026-11-26T00:00:00Z',
      services: {},
      images: { [`sha256:${'d'.repeat(64)}`]: { refs: [], layers: [stored.layer] } },
    };
    const manifest = envelopeBytes(signEnvelope('release', m, [hub.keys.release[0]!]));
    // Published now, as a hub does: its root came in at start-up, and a release is checked under the root
    // in force when it was accepted.
    const release = await hub.publish(manifest, 'ops:test');
    await hub.deps.store.rollouts.start(
      { releaseId: release.id, target: 'group:north', createdBy: 'ops:test' },
      T0 + 1,
    );
    const records: WireRecord[] = [
      { seq: 1, ts: T0, cls: 1, kind: 'log', source: 'portal', body: 'pump started', bootId: 'b1' },
      { seq: 2, ts: T0 + 1, cls: 4, kind: 'event', source: 'deploy', body: '{"r":1}', bootId: 'b1' },
      { seq: 3, ts: T0 + 2, cls: 3, kind: 'metric', source: 'cpu', body: '{"v":0.5,"l":{"c":"0"}}', bootId: 'b1' },
    ];
    const batch = encodeBatch('0123456789abcdef', records, {}, 4);
    await hub.deps.store.telemetry.ingest(
      v.id,
      { epoch: batch.epoch, backlog: batch.backlog, drops: batch.drops },
      telemetryRecordsFromWire(records),
      321,
      T0 + 3,
    );
    const digests = [stored.index[0], ...stored.content.map((c) => c[0])];
    const path = paths.vesselPacks('ship-a');
    const s = v.sign('POST', path, { release: 'sms@1.0', digests });
    const pack = await hub.app.inject({ method: 'POST', url: path, headers: s.headers, payload: s.payload });
    expect(pack.statusCode, pack.body).toBe(201);

    const store = openSqliteHubStore(hub.dataDir);
    try {
      expect(await store.vessels.getByName('ship-a')).toMatchObject({
        id: v.id,
        groups: ['north'],
        publicKey: v.key.publicRaw.toString('base64'),
        lastAddress: '127.0.0.1',
      });
      expect((await store.audit.list({ limit: 10 })).map((a) => [a.action, a.detail])).toEqual([
        ['vessel.add', { vessel: 'ship-a', groups: ['north'], offline: false }],
      ]);
      expect((await store.roots.latest())!.envelope).toEqual(hub.rootBytes);
      const r = (await store.releases.find('sms@1.0'))!;
      expect(r).toMatchObject({ id: release.id, sequence: 1, publishedBy: 'ops:test' });
      expect(await store.releases.envelope(r.id)).toEqual(manifest);
      expect(await store.rollouts.targetsOf(v.id)).toMatchObject([{ app: 'sms', releaseId: r.id, setAt: T0 + 1 }]);
      expect(await store.rollouts.mayFetch(v.id, r.id)).toBe(true);
      expect(await store.telemetry.logs(v.id, { limit: 10 })).toMatchObject([{ line: 'pump started', level: 'info' }]);
      expect(await store.telemetry.events(v.id, { limit: 10 })).toMatchObject([{ type: 'deploy', data: { r: 1 } }]);
      expect(await store.telemetry.metrics(v.id, { name: 'cpu', since: 0, limit: 10 })).toEqual([
        { labels: { c: '0' }, value: 0.5, at: T0 + 2 },
      ]);
      expect(await store.telemetry.counters(v.id)).toMatchObject({
        backlog: 4,
        recordsReceived: 3,
        bytesReceived: 321,
      });
      const { id, length } = pack.json() as { id: string; length: number };
      expect(await store.packs.get(id, v.id)).toMatchObject({ releaseId: r.id, digests, length });
      for (const d of digests) expect(await store.chunks.read(d)).toEqual(hub.chunkFiles.get(d));
      expect(await store.chunks.missing(digests)).toEqual([]);
      // And the other way: what the new store writes, the running hub's stores see.
      const t = newToken(T0 + 10 ** 12);
      const w = await store.vessels.create({ name: 'ship-b', groups: [], token: t.stored }, T0);
      expect((await hub.deps.store.vessels.getByName('ship-b'))!.id).toBe(w.id);
    } finally {
      await store.close();
    }
  });

  it(
    'lets exactly one of 8 processes claim one enrolment token on one database',
    async () => {
      const dir = tempDir('tender-hub-store-');
      const store = openSqliteHubStore(dir);
      const t = newToken(Date.now() + 3600_000);
      const v = await store.vessels.create({ name: 'ship-a', groups: [], token: t.stored }, Date.now());
      await store.close();
      const keys = Array.from({ length: 8 }, publicKey);
      const workers = keys.map((k) => {
        const p = spawn(process.execPath, ['--import', 'tsx', WORKER, dir, t.stored.tokenHash, k], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        const ready = new Promise<void>((resolve) => p.stdout.on('data', () => out.includes('ready') && resolve()));
        const done = new Promise<string>((resolve) => p.on('close', () => resolve(out.replace('ready\n', '').trim())));
        return { p, ready, done, log: () => `stdout ${JSON.stringify(out)} stderr ${err.slice(-500)}` };
      });
      const killAll = () => workers.forEach((w) => w.p.kill('SIGKILL'));
      let timer = setTimeout(killAll, START_TIMEOUT_MS);
      try {
        const started = Date.now();
        await Promise.all(workers.map((w) => Promise.race([w.ready, w.done])));
        const notReady = workers.filter((w) => !w.log().includes('ready'));
        expect(
          notReady.map((w) => w.log()),
          `not ready after ${Date.now() - started} ms`,
        ).toEqual([]);
        clearTimeout(timer);
        timer = setTimeout(killAll, RACE_TIMEOUT_MS);
        const at = Date.now() + 300;
        for (const w of workers) w.p.stdin.write(`go ${at}\n`);
        const outcomes = await Promise.all(workers.map((w) => w.done));
        const why = workers.map((w) => w.log()).join('\n');
        expect(
          outcomes.filter((o) => o === 'won'),
          why,
        ).toHaveLength(1);
        expect(
          outcomes.filter((o) => o !== 'won'),
          why,
        ).toEqual(Array(7).fill('token_used'));
        const winner = keys[outcomes.indexOf('won')];
        const after = openSqliteHubStore(dir);
        expect((await after.vessels.get(v.id))!.publicKey).toBe(winner);
        await after.close();
      } finally {
        clearTimeout(timer);
      }
    },
    START_TIMEOUT_MS + RACE_TIMEOUT_MS + 15_000,
  );
});
