import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import {
  CONSOLE_PASSWORD,
  composeFile,
  enrolVessel,
  eventuallyOrReport,
  freePort,
  getBody,
  startShore,
  vesselReport,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { runDeferredCleanup, useFileScope } from '../helpers/cleanup.js';
import { paths } from '../../shared/protocol/routes.js';
import { BundleDecoder, BundleEncoder, type BundleFrame } from '../../shared/protocol/bundle.js';
import { envelopeBytes, parsePayload, readEnvelope, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey } from '../../shared/trust/keys.js';
import { unique } from '../helpers/names.js';

/**
 * Journey 1's USB stick: a release exported ashore as a bundle, imported on a vessel whose hub is down,
 * switched, rolled back; truncated, altered and foreign bundles refused with nothing staged. Real hub,
 * router and agent processes and the real engine; v2's image is removed from the engine after publishing,
 * so the vessel can only get it from the bundle.
 */
const run = randomBytes(3).toString('hex');
const app = unique('carry');
const repo = `tender-test/carry-${run}`;
let shore: Shore;
let vessel: Vessel;
let port: number;
let v2ImageId: string;
let hubPort: string;
const bundles: Record<string, string> = {};

function readFrames(file: string): BundleFrame[] {
  const d = new BundleDecoder();
  const frames = d.push(readFileSync(file));
  d.finish();
  return frames;
}

function writeFrames(file: string, frames: BundleFrame[]): void {
  const enc = new BundleEncoder();
  const header = frames.find((f) => f.type === 'header')!;
  const manifest = frames.find((f) => f.type === 'manifest')!;
  const parts = [enc.start(header.header, manifest.bytes)];
  for (const f of frames) if (f.type === 'chunk') parts.push(enc.chunk(f.digest, f.compressed));
  parts.push(enc.end());
  writeFileSync(file, Buffer.concat(parts));
}

const imagePresent = (id: string) => {
  try {
    execFileSync('docker', ['image', 'inspect', id], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

async function hubEvents(): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const r = await fetch(`${shore.url}${paths.vesselEvents(vessel.name, { limit: 1000 })}`, {
    headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
  });
  return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
}

const consoleAuth = { authorization: `Basic ${Buffer.from(`crew:${CONSOLE_PASSWORD}`).toString('base64')}` };

/** POST a bundle file to the console's JSON upload route (basic auth, as curl would). */
async function consoleUpload(file: string): Promise<{ status: number; body: { message?: string } }> {
  const r = await fetch(`${vessel.consoleUrl}/api/bundle`, {
    method: 'POST',
    headers: { ...consoleAuth, 'content-type': 'application/octet-stream' },
    body: readFileSync(file),
  });
  return { status: r.status, body: (await r.json()) as { message?: string } };
}

async function releasesOnBoard(): Promise<string[]> {
  const r = await tender(['releases', '--config', vessel.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout).releases as { version: string }[]).map((x) => x.version).sort();
}

beforeAll(async () => {
  useFileScope();
  buildBusyboxImage({ tag: `${repo}:v1`, body: 'carry v1\n' });
  buildBusyboxImage({ tag: `${repo}:v2`, body: 'carry v2\n' });
  shore = await startShore();
  vessel = await enrolVessel(shore, `ship-${run}`);
  port = await freePort();
  await vessel.startRouter();
  vessel.startAgent();
  // Each image leaves the engine once published: the vessel (same engine) gets it from chunks only.
  const v1 = await tender(
    [
      'release',
      'publish',
      '--compose',
      composeFile(shore.dir, 'v1', `${repo}:v1`, port, app),
      '--key',
      shore.releaseKey,
      '--version',
      '1.0.0',
    ],
    shore.env,
  );
  expect(v1.code, v1.stderr).toBe(0);
  execFileSync('docker', ['rmi', '-f', `${repo}:v1`], { stdio: 'ignore' });
  const ro = await tender(['rollout', 'start', '1.0.0', '--target', `vessel:${vessel.name}`], shore.env);
  expect(ro.code, ro.stderr).toBe(0);
  await waitServing(port, 'carry v1', vessel);
  // The hub learns what the vessel runs from its status report.
  await eventuallyOrReport(
    'the hub to know the vessel runs 1.0.0',
    async () => {
      const r = await fetch(`${shore.url}${paths.vessel(vessel.name)}`, {
        headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
      });
      return ((await r.json()) as { currentRelease: string | null }).currentRelease === '1.0.0';
    },
    () => vesselReport(vessel),
  );
  const p = await tender(
    [
      'release',
      'publish',
      '--compose',
      composeFile(shore.dir, 'v2', `${repo}:v2`, port, app),
      '--key',
      shore.releaseKey,
      '--version',
      '2.0.0',
    ],
    shore.env,
  );
  expect(p.code, p.stderr).toBe(0);
  v2ImageId = execFileSync('docker', ['image', 'inspect', '-f', '{{.Id}}', `${repo}:v2`])
    .toString()
    .trim();
  execFileSync('docker', ['rmi', '-f', `${repo}:v2`], { stdio: 'ignore' });
}, 180_000);

afterAll(async () => {
  await runDeferredCleanup();
  removeAppContainers(app);
  for (const t of ['v1', 'v2'])
    try {
      execFileSync('docker', ['rmi', '-f', `${repo}:${t}`], { stdio: 'ignore' });
    } catch {
      /* not loaded */
    }
});

describe('journey: a release carried aboard on a USB stick', () => {
  it('exports every chunk, or only what the vessel lacks as the hub knows', async () => {
    bundles.all = join(shore.dir, 'all.bundle');
    bundles.lean = join(shore.dir, 'lean.bundle');
    const all = await tender(['bundle', 'export', `${app}@2.0.0`, '--out', bundles.all, '--json'], shore.env);
    expect(all.code, all.stderr).toBe(0);
    const lean = await tender(
      ['bundle', 'export', `${app}@2.0.0`, '--out', bundles.lean, '--for', `vessel:${vessel.name}`, '--json'],
      shore.env,
    );
    expect(lean.code, lean.stderr).toBe(0);
    const a = JSON.parse(all.stdout);
    const l = JSON.parse(lean.stdout);
    expect(a).toMatchObject({ release: `${app}@2.0.0`, for: null });
    expect(l).toMatchObject({ release: `${app}@2.0.0`, for: `vessel:${vessel.name}` });
    // v1 and v2 share busybox: the lean bundle carries only v2's new chunks.
    expect(l.chunks).toBeGreaterThan(0);
    expect(l.chunks).toBeLessThan(a.chunks);
    expect(l.bytes).toBeLessThan(a.bytes / 2);
    expect(existsSync(`${bundles.lean}.part`)).toBe(false);
    const bad = await tender(['bundle', 'export', `${app}@9.9.9`, '--out', join(shore.dir, 'x.bundle')], shore.env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/404|no release/);
    expect(existsSync(join(shore.dir, 'x.bundle'))).toBe(false);
  });

  it('refuses truncated, altered and foreign bundles with the hub down, staging nothing', async () => {
    hubPort = new URL(shore.url).port;
    await shore.hub.stop();
    const bytes = readFileSync(bundles.all!);
    const cut = join(shore.dir, 'cut.bundle');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.byteLength * 0.63)));

    // One byte of a chunk's compressed body flipped, the framing rewritten around it (end hash valid).
    const frames = readFrames(bundles.all!);
    const altered = join(shore.dir, 'altered.bundle');
    const big = frames.findIndex((f) => f.type === 'chunk' && f.compressed.byteLength > 100);
    const flipped = frames.map((f, i) => {
      if (i !== big || f.type !== 'chunk') return f;
      const c = Buffer.from(f.compressed);
      c[50]! ^= 0xff;
      return { ...f, compressed: c };
    });
    writeFrames(altered, flipped);

    // A byte flipped in the file itself: the end hash no longer matches.
    const flippedFile = join(shore.dir, 'flipped.bundle');
    const fb = Buffer.from(bytes);
    fb[Math.floor(fb.byteLength / 2)]! ^= 0x01;
    writeFileSync(flippedFile, fb);

    // The same release re-signed by a key this vessel's root does not list.
    const foreign = join(shore.dir, 'foreign.bundle');
    const manifest = frames.find((f) => f.type === 'manifest')!;
    const payload = parsePayload(readEnvelope(manifest.bytes));
    const resigned = envelopeBytes(signEnvelope('release', payload, [generateKey().key]));
    writeFrames(
      foreign,
      frames.map((f) => (f.type === 'manifest' ? { type: 'manifest', bytes: resigned } : f)),
    );

    const notBundle = join(shore.dir, 'not.bundle');
    writeFileSync(notBundle, 'hello, crew\n');

    for (const [file, why] of [
      [cut, /truncated/],
      [altered, /chunk [0-9a-f]{12}/],
      [flippedFile, /altered|chunk|does not|malformed|frame/],
      [foreign, /sign|key/],
      [notBundle, /not a Tender bundle/],
    ] as const) {
      const r = await tender(['bundle', 'import', file, '--config', vessel.config]);
      expect(r.code, `${file}: ${r.stdout}`).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/bundle refused/);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/nothing staged/);
    }
    // The console's upload form goes through the same checks: refused, one reason, nothing staged.
    for (const [file, why] of [
      [cut, /truncated/],
      [foreign, /sign|key/],
    ] as const) {
      const r = await consoleUpload(file);
      expect(r.status, file).toBe(409);
      expect(r.body.message).toMatch(/bundle refused/);
      expect(r.body.message).toMatch(why);
      expect(r.body.message).toMatch(/nothing staged/);
    }
    expect(await releasesOnBoard()).toEqual(['1.0.0']);
    expect(imagePresent(v2ImageId)).toBe(false);
    expect(readdirSync(join(vessel.dataDir, 'import'))).toEqual([]);
    expect(await getBody(port)).toBe('carry v1');
  });

  it('imports the lean bundle with the hub down, switches to it, and rolls back', async () => {
    const r = await tender(['bundle', 'import', bundles.lean!, '--config', vessel.config, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ app, version: '2.0.0', outcome: 'live', alreadyOnBoard: false });
    expect(imagePresent(v2ImageId)).toBe(true);
    await waitServing(port, 'carry v2', vessel);
    expect((await vessel.status()).release).toMatchObject({ current: '2.0.0', previous: '1.0.0' });

    // The running agent follows the carried target too: it does not go back to the hub's 1.0.0.
    await new Promise((res) => setTimeout(res, 3000));
    expect(await getBody(port)).toBe('carry v2');

    // The same release again: nothing new staged, nothing changes.
    const again = await tender(['bundle', 'import', bundles.all!, '--config', vessel.config, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ alreadyOnBoard: true, outcome: 'live' });

    const rb = await tender(['rollback', '--config', vessel.config, '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout)).toMatchObject({ from: '2.0.0', to: '1.0.0' });
    expect(await getBody(port)).toBe('carry v1');
    await new Promise((res) => setTimeout(res, 3000));
    // The hold wins over the carried target as it does over the hub's.
    expect(await getBody(port)).toBe('carry v1');
    expect((await vessel.status()).release).toMatchObject({ current: '1.0.0', held: true });
  });

  it('imports through the crew console upload form (CSRF-bound), under the same rules', async () => {
    const page = await fetch(`${vessel.consoleUrl}/`, { headers: consoleAuth });
    const html = await page.text();
    expect(html).toContain('<form id="bundle" method="post" action="/upload">');
    // A post from elsewhere (no token from this page) is refused before a byte is imported.
    const forged = await fetch(`${vessel.consoleUrl}/upload`, {
      method: 'POST',
      headers: { ...consoleAuth, 'content-type': 'application/octet-stream' },
      body: readFileSync(bundles.all!),
    });
    expect(forged.status).toBe(403);
    const csrf = /'x-csrf': "([0-9a-f]{64})"/.exec(html)![1]!;
    const r = await fetch(`${vessel.consoleUrl}/upload`, {
      method: 'POST',
      headers: { ...consoleAuth, 'content-type': 'application/octet-stream', 'x-csrf': csrf },
      body: readFileSync(bundles.all!),
    });
    const body = (await r.json()) as Record<string, unknown>;
    expect(r.status, JSON.stringify(body)).toBe(200);
    // On board already, and the crew's hold on 1.0.0 wins, as it does for the CLI and the hub.
    expect(body).toMatchObject({ app, version: '2.0.0', alreadyOnBoard: true, outcome: 'held' });
    expect(await getBody(port)).toBe('carry v1');
  });

  it('tells the hub at the next contact', async () => {
    await shore.start(`127.0.0.1:${hubPort}`);
    await eventuallyOrReport(
      'bundle.imported and rollback events ashore',
      async () => {
        const types = (await hubEvents()).map((e) => e.type);
        return types.includes('bundle.imported') && types.includes('rollback');
      },
      () => vesselReport(vessel),
      90_000,
    );
    const ev = (await hubEvents()).find((e) => e.type === 'bundle.imported')!;
    expect(ev.data).toMatchObject({ app, version: '2.0.0', sequence: 2 });
    await eventually(async () => {
      const r = await fetch(`${shore.url}${paths.vessel(vessel.name)}`, {
        headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
      });
      const v = (await r.json()) as { status: { current: string; previous: string; held: boolean } | null };
      return v.status?.current === '1.0.0' && v.status.previous === '2.0.0' && v.status.held;
    }, 30_000);
  }, 150_000);
});
