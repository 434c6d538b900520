import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHub } from '../../hub/app.js';
import { openHubStore } from '../../hub/store/open-store.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { paths } from '../../shared/protocol/routes.js';
import { runCli } from '../helpers/cli.js';
import { enrolVessel, startHub } from '../helpers/hub.js';
import { startPgCluster, type PgCluster } from '../helpers/postgres.js';
import { daemon } from '../helpers/proc.js';
import { storeLayer, tarOf } from '../helpers/tar.js';
import { tempDir } from '../helpers/tmp.js';

// initdb + first start on a loaded 2-core machine: generous, only a bound on a hang.
const START_TIMEOUT_MS = 120_000;

/**
 * `tender hub migrate` and `tender hub serve --db` on a real PostgreSQL (Debian's package): an embedded
 * hub's vessel, release, rollout, tokens and chunks moved into PostgreSQL and a chunk folder, and the
 * same vessel served by the new hub with the key it enrolled with.
 */
describe('hub on PostgreSQL: migrate and serve', () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPgCluster({ timeoutMs: START_TIMEOUT_MS });
  }, START_TIMEOUT_MS + 10_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('moves an embedded hub into PostgreSQL; the enrolled vessel carries on without re-enrolling', async () => {
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
    const release = await hub.publish(manifest, 'ops:test');
    await hub.rollout(release, 'group:north');
    const digests = [stored.index[0], ...stored.content.map((c) => c[0])];
    const desiredBefore = await hub.app.inject({ method: 'GET', url: paths.vesselDesired('ship-a'), ...signed() });
    expect(desiredBefore.statusCode, desiredBefore.body).toBe(200);
    const auditBefore = await hub.deps.store.audit.list({ limit: 100 });
    await hub.app.close();

    const url = await cluster.createDatabase();
    const chunksDir = tempDir('tender-pg-chunks-');
    const moved = await runCli(['hub', 'migrate', '--from', hub.dataDir, '--to', url, '--chunks', chunksDir, '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const report = JSON.parse(moved.stdout) as { tables: Record<string, number>; chunks: { copied: number } };
    expect(report.tables).toMatchObject({ vessels: 1, releases: 1, rollouts: 1, app_targets: 1, roots: 1 });
    expect(report.chunks.copied).toBeGreaterThanOrEqual(digests.length);
    // Twice is refused: the target holds a hub now.
    const again = await runCli(['hub', 'migrate', '--from', hub.dataDir, '--to', url, '--chunks', chunksDir]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a hub/);

    const store = await openHubStore({ db: url, chunks: chunksDir });
    const { app } = await buildHub({ dataDir: '', store });
    try {
      // The vessel's key, id and target came across: its signed request is accepted and answered the same.
      const desired = await app.inject({ method: 'GET', url: paths.vesselDesired('ship-a'), ...signed() });
      expect(desired.statusCode, desired.body).toBe(200);
      expect(desired.json()).toEqual(desiredBefore.json());
      // An ops token of the embedded hub still works; the audit log kept its ids.
      const list = await app.inject({
        method: 'GET',
        url: paths.vessels(),
        headers: { authorization: `Bearer ${hub.token('viewer')}` },
      });
      expect(list.statusCode, list.body).toBe(200);
      expect(await store.audit.list({ limit: 100 })).toEqual(auditBefore);
      for (const d of digests) expect(await store.chunks.read(d)).toEqual(hub.chunkFiles.get(d));
      // New rows continue the copied identities (no clash with copied ids).
      const r2 = await store.releases.add(
        { app: 'nav', version: '1', sequence: 1, envelope: Buffer.from('x'), publishedBy: 't' },
        Date.now(),
      );
      expect(r2.release.id).toBeGreaterThan(release.id);
    } finally {
      await app.close();
    }

    function signed() {
      const s = v.sign('GET', paths.vesselDesired('ship-a'));
      return { headers: s.headers };
    }
  }, 120_000);

  it('serves with --db from a real process, brings the schema up to date, and names a bad config field', async () => {
    const url = await cluster.createDatabase();
    const schema = await runCli(['hub', 'migrate', '--to', url, '--json']);
    expect(schema.code, schema.stderr).toBe(0);
    expect(JSON.parse(schema.stdout)).toMatchObject({ schema: expect.any(Number) });

    const dir = tempDir('tender-hub-pg-');
    const config = join(dir, 'hub.json');
    writeFileSync(config, JSON.stringify({ db: url, chunks: join(dir, 'chunks'), listen: '127.0.0.1:0' }));
    const hub = daemon(['hub', 'serve', '--config', config]);
    const line = await hub.waitFor((l) => l.includes('hub listening'), 60_000);
    expect(hub.lines.join('\n')).toMatch(/"store":"postgres"/);
    const base = (JSON.parse(line) as { url: string }).url;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    // The database answers (a ping failure would name it); what is missing is the root, as on SQLite.
    const ready = await fetch(`${base}/ready`);
    expect(await ready.json()).toMatchObject({ reason: expect.stringMatching(/no root document/) });
    // The first ops token, made with the config the hubs read, works on a hub serving from it.
    const made = await runCli(['hub', 'token', 'create', '--config', config, '--role', 'admin', '--name', 'first']);
    expect(made.code, made.stderr).toBe(0);
    const tokens = await fetch(`${base}/api/v1/tokens`, { headers: { authorization: `Bearer ${made.stdout.trim()}` } });
    expect(tokens.status).toBe(200);
    expect(JSON.stringify(await tokens.json())).toContain('first');
    await hub.stop();

    writeFileSync(config, JSON.stringify({ db: url, chunk: 'typo' }));
    const bad = await runCli(['hub', 'serve', '--config', config]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(config);
    expect(bad.stderr).toMatch(/chunk/);
    const noChunks = await runCli(['hub', 'serve', '--db', url, '--listen', '127.0.0.1:0']);
    expect(noChunks.code).not.toBe(0);
    expect(noChunks.stderr).toMatch(/--chunks/);
  }, 120_000);

  it("holds a rate limit across two hubs on one database: the count is the store's, per route", async () => {
    const url = await cluster.createDatabase();
    const chunks = tempDir('tender-hub-pg-chunks-');
    const hubs = await Promise.all(
      [0, 1].map(async () => {
        const store = await openHubStore({ db: url, chunks });
        return (await buildHub({ dataDir: '', store, limits: { ENROL_ATTEMPTS_PER_MINUTE: 4 } })).app;
      }),
    );
    try {
      const enrol = (i: number, remoteAddress: string) =>
        hubs[i % 2]!.inject({
          method: 'POST',
          url: paths.enrol(),
          remoteAddress,
          payload: { token: 'not-a-token', publicKey: Buffer.alloc(32).toString('base64') },
        });
      // Six attempts from one address, alternating between the hubs: 4 are heard (401), then 429 from both.
      const codes = [];
      for (let i = 0; i < 6; i++) codes.push((await enrol(i, '10.9.0.1')).statusCode);
      expect(codes).toEqual([401, 401, 401, 401, 429, 429]);
      // Another address has its own count; the health route is not limited.
      expect((await enrol(0, '10.9.0.2')).statusCode).toBe(401);
      expect((await hubs[1]!.inject({ url: '/health' })).statusCode).toBe(200);
    } finally {
      for (const app of hubs) await app.close();
    }
  }, 120_000);
});
