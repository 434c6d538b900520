import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpsToken } from '../../hub/ops-tokens.js';
import { openHubStore } from '../../hub/store/open-store.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { encodeUploadPack } from '../../shared/protocol/pack.js';
import { paths } from '../../shared/protocol/routes.js';
import { ROLLOUT_OUTCOME_EVENT } from '../../shared/protocol/rollout-outcome.js';
import type { RolloutShow } from '../../shared/protocol/rollout-bodies.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey } from '../../shared/trust/keys.js';
import { startHaproxy } from '../helpers/haproxy.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { startPgCluster, type PgCluster } from '../helpers/postgres.js';
import { daemon, eventually, type Daemon } from '../helpers/proc.js';
import { enrolSimVessel, type SimVessel } from '../helpers/sim-vessel.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { tempDir } from '../helpers/tmp.js';

const START_TIMEOUT_MS = 120_000;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * The scale-out hub for real: two `tender hub serve` processes on one PostgreSQL (Debian's) and one S3
 * chunk store (s3rver, an emulator: test/helpers/s3.ts) behind Debian's haproxy. A release is published
 * through one hub, the vessel enrols and asks for its pack through the load balancer, the hub streaming
 * the pack is killed mid-pack, and the vessel resumes with Range through the balancer, now the survivor,
 * at its byte: the bytes are those of the whole pack.
 */
describe('two hubs behind haproxy on PostgreSQL + S3', () => {
  let cluster: PgCluster;
  let s3: TestS3;
  beforeAll(async () => {
    s3 = await startS3();
    cluster = await startPgCluster({ timeoutMs: START_TIMEOUT_MS });
  }, START_TIMEOUT_MS + 10_000);
  afterAll(async () => {
    await s3?.stop();
    await cluster?.stop();
  }, 60_000);

  /** Two hubs on one fresh database and prefix, haproxy in front, an operator and an admin token. */
  async function startScaleOut() {
    const db = await cluster.createDatabase();
    const chunks = `s3://${s3.bucket}/scale-${process.pid}-${randomBytes(3).toString('hex')}`;
    const dir = tempDir('tender-scale-');
    const keys = makeKeys(3, 1);
    const rootFile = join(dir, 'root.json');
    writeFileSync(rootFile, signedRoot(rootPayloadFor(1, keys), keys.root));
    const env = { ...s3.env, TENDER_HUB_DB: db, TENDER_HUB_CHUNKS: chunks };
    const serve = (): Daemon =>
      daemon(['hub', 'serve', '--root', rootFile, '--listen', '127.0.0.1:0'], { ...env, TENDER_LOG_LEVEL: 'info' });
    const hubs = { a: serve(), b: serve() };
    const ports: Record<string, number> = {};
    for (const [name, d] of Object.entries(hubs)) {
      const line = await d.waitFor((l) => l.includes('hub listening'), 60_000);
      ports[name] = Number(new URL((JSON.parse(line) as { url: string }).url).port);
    }
    const lb = await startHaproxy(Object.entries(ports).map(([name, port]) => ({ name, port })));
    const direct = (name: string) => `http://127.0.0.1:${ports[name]}`;

    // Tokens made in the shared database (what `tender hub token create --db` does).
    const store = await openHubStore({ db, chunks }, { env: s3.env });
    const bearer = async (role: 'operator' | 'admin') =>
      `Bearer ${(await createOpsToken(store, role, `ci-${role}`, Date.now())).token}`;
    const op = { authorization: await bearer('operator') };
    const admin = { authorization: await bearer('admin') };
    await store.close();
    /** Sign a release manifest with the root's release key and publish it through one hub. */
    const publish = async (via: string, m: ReleaseManifest) => {
      const pub = await fetch(`${via}${paths.releases()}`, {
        method: 'PUT',
        headers: { ...op, 'content-type': MEDIA.envelope },
        body: new Uint8Array(envelopeBytes(signEnvelope('release', m, [keys.release[0]!]))),
      });
      expect(pub.status, await pub.clone().text()).toBe(201);
    };
    return { hubs, lb, direct, op, admin, publish };
  }

  const manifest = (app: string, version: string, images: ReleaseManifest['images'] = {}): ReleaseManifest => ({
    _type: 'release',
    spec: 1,
    app,
    version,
    sequence: 1,
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    services: {},
    images,
  });

  it('publishes through one hub, and a vessel cut off mid-pack resumes through the other at its byte', async () => {
    const { hubs, lb, direct, op, publish } = await startScaleOut();

    // Publish through hub a: 40 incompressible chunks (~1 MB); the hub sends a pack chunk by chunk from S3,
    // so when the first bytes arrive most of it is not yet sent.
    const made = Array.from({ length: 40 }, () => {
      const raw = randomBytes(24_000);
      return { digest: sha256(raw), rawSize: raw.byteLength, compressed: brotliCompressSync(raw) };
    });
    const up = await fetch(`${direct('a')}${paths.chunks()}`, {
      method: 'POST',
      headers: { ...op, 'content-type': MEDIA.uploadPack },
      body: new Uint8Array(encodeUploadPack(made)),
    });
    expect(up.status, await up.clone().text()).toBe(200);
    await publish(
      direct('a'),
      manifest('sms', '1.0', {
        [`sha256:${'c'.repeat(64)}`]: {
          refs: [],
          layers: [],
          config: {
            size: made.reduce((a, c) => a + c.rawSize, 0),
            chunks: made.map((c) => [c.digest, c.rawSize, c.compressed.byteLength] as [string, number, number]),
          },
        },
      }),
    );

    // The vessel: added and enrolled through the balancer, its release rolled out.
    const add = await fetch(`${lb.url}${paths.vessels()}`, {
      method: 'POST',
      headers: { ...op, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ship-a', groups: [] }),
    });
    expect(add.status).toBe(201);
    const key = generateKey().key;
    const enrol = await fetch(`${lb.url}${paths.enrol()}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        token: ((await add.json()) as { token: string }).token,
        publicKey: key.publicRaw.toString('base64'),
      }),
    });
    expect(enrol.status).toBe(200);
    const vesselId = ((await enrol.json()) as { vesselId: string }).vesselId;
    const roll = await fetch(`${lb.url}${paths.rollouts()}`, {
      method: 'POST',
      headers: { ...op, 'content-type': 'application/json' },
      body: JSON.stringify({ release: 'sms@1.0', target: 'vessel:ship-a' }),
    });
    expect(roll.status, await roll.clone().text()).toBe(201);
    const signed = (method: string, path: string, body?: unknown) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers = signVesselRequest(key, vesselId, method, path, Date.now(), payload);
      return { headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) }, payload };
    };
    const packPath = paths.vesselPacks('ship-a');
    const req = signed('POST', packPath, { release: 'sms@1.0', digests: made.map((c) => c.digest) });
    const created = await fetch(`${lb.url}${packPath}`, {
      method: 'POST',
      headers: req.headers,
      body: req.payload && new Uint8Array(req.payload),
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const pack = (await created.json()) as { id: string; length: number };

    // Stream the pack through the balancer; once bytes flow, kill the hub sending them.
    const path = paths.vesselPack('ship-a', pack.id);
    const first = await new Promise<{ bytes: Buffer; servedBy: string }>((resolve, reject) => {
      const parts: Buffer[] = [];
      let servedBy = '';
      let killed = false;
      const r = get(`${lb.url}${path}`, { headers: signed('GET', path).headers }, (res) => {
        servedBy = String(res.headers['x-tender-hub']);
        res.on('data', (d: Buffer) => {
          parts.push(d);
          if (!killed) {
            killed = true;
            hubs[servedBy as 'a' | 'b'].proc.kill('SIGKILL');
          }
        });
        const done = () => resolve({ bytes: Buffer.concat(parts), servedBy });
        res.on('end', done);
        res.on('aborted', done);
        res.on('error', done);
      });
      r.on('error', (err) => (parts.length ? resolve({ bytes: Buffer.concat(parts), servedBy }) : reject(err)));
    });
    expect(['a', 'b']).toContain(first.servedBy);
    expect(first.bytes.byteLength).toBeGreaterThan(0);
    expect(first.bytes.byteLength).toBeLessThan(pack.length);

    // Resume at its byte through the balancer: the survivor answers.
    const rest = await fetch(`${lb.url}${path}`, {
      headers: { ...signed('GET', path).headers, range: `bytes=${first.bytes.byteLength}-` },
      signal: AbortSignal.timeout(120_000),
    });
    expect(rest.status).toBe(206);
    const survivor = first.servedBy === 'a' ? 'b' : 'a';
    expect(rest.headers.get('x-tender-hub')).toBe(survivor);
    const resumed = Buffer.concat([first.bytes, Buffer.from(await rest.arrayBuffer())]);
    // The same bytes as the whole pack asked of the survivor alone.
    const whole = await fetch(`${direct(survivor)}${path}`, {
      headers: signed('GET', path).headers,
      signal: AbortSignal.timeout(120_000),
    });
    const all = Buffer.from(await whole.arrayBuffer());
    expect(all.byteLength).toBe(pack.length);
    expect(sha256(resumed)).toBe(sha256(all));
  }, 300_000); // a bound on a hang only: ~25 s on a loaded 2-core machine

  it('advances a rollout once while both hubs take the same telemetry at once; stores each record once', async () => {
    const { hubs, lb, direct, op, admin, publish } = await startScaleOut();
    await publish(direct('b'), manifest('sms', '2'));
    // Four vessels enrolled through the balancer. Each batch goes through the balancer and, at the same
    // moment, to both hubs directly: every record arrives three times, at both hubs concurrently, and each
    // hub drives the rollout engine the moment an outcome arrives.
    const fleet: SimVessel[] = [];
    for (let i = 0; i < 4; i++)
      fleet.push(
        await enrolSimVessel(lb, op.authorization.slice(7), `scale-${i}`, ['fleet'], () => 'healthy', {
          localAddress: `127.0.5.${10 + i}`,
          retryVia: [direct('a'), direct('b')],
        }),
      );
    const start = await fetch(`${lb.url}${paths.rollouts()}`, {
      method: 'POST',
      headers: { ...op, 'content-type': 'application/json' },
      body: JSON.stringify({ release: 'sms@2', target: 'group:fleet', waves: [25, 75, 100] }),
    });
    expect(start.status, await start.clone().text()).toBe(201);
    const { id } = (await start.json()) as { id: number };
    const show = async () => {
      const r = await fetch(`${lb.url}${paths.rollout(id)}`, { headers: op });
      return (await r.json()) as RolloutShow;
    };
    const done = await eventually(
      async () => {
        await Promise.all(fleet.map((v) => v.step()));
        const s = await show();
        return s.rollout.state === 'completed' ? s : undefined;
      },
      90_000,
      200,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; the rollout: ${JSON.stringify((await show()).rollout)}`);
    });
    expect(done.waves.map((w) => w.counts.succeeded)).toEqual([1, 2, 1]);

    // Each record stored once: every vessel sent 'downloading' and 'installed-healthy' three times over.
    for (const v of fleet) {
      expect(v.queued).toBe(0);
      expect(v.acks).toEqual({ stored: 2, duplicates: 4 });
      const ev = await fetch(`${lb.url}${paths.vesselEvents(v.name, { limit: 100 })}`, { headers: op });
      const events = ((await ev.json()) as { events: { type: string }[] }).events;
      expect(events.filter((e) => e.type === ROLLOUT_OUTCOME_EVENT)).toHaveLength(2);
    }
    // Each wave started once and the rollout completed once, in the audit log and in the two hubs' logs.
    const audit = await fetch(`${lb.url}${paths.audit({ limit: 1000 })}`, { headers: admin });
    const records = ((await audit.json()) as { records: { action: string; detail: { id?: number } }[] }).records;
    const mine = records.filter((r) => r.detail?.id === id).map((r) => r.action);
    expect(mine.filter((a) => a === 'rollout.wave-start')).toHaveLength(2);
    expect(mine.filter((a) => a === 'rollout.complete')).toHaveLength(1);
    const engineLines = [...hubs.a.lines, ...hubs.b.lines].filter((l) => l.includes('"rollout wave-start"'));
    expect(engineLines.map((l) => (JSON.parse(l) as { wave: number }).wave).sort()).toEqual([1, 2, 3]);
  }, 300_000); // a bound on a hang only
});
