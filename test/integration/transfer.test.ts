import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { composeFile, enrolVessel, freePort, startShore, waitServing, type Vessel } from '../helpers/fleet.js';
import { eventually, tender } from '../helpers/proc.js';
import { LinkSim } from '../link-sim.js';
import { paths } from '../../shared/protocol/routes.js';
import { requireTool } from '../helpers/tools.js';
import { unique } from '../helpers/names.js';

/**
 * A release travels from the publisher through the hub to a vessel that does not have its images: the
 * vessel fetches the chunks in packs through a link simulator that cuts and tampers, verifies every
 * chunk and layer, `docker load`s the images and swaps to them.
 */
function rmi(tag: string) {
  execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
}

/** Bytes of packs the vessel has partly downloaded (its resumable state on disk). */
function partBytes(vessel: Vessel): number {
  const dir = join(vessel.dataDir, 'fetch');
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.part'))
      .reduce((a, f) => a + statSync(join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

describe('release transfer', () => {
  // In plain HTTP (or past a TLS-terminating proxy) a byte changed in transit reaches the agent, and the
  // chunk's digest is what stands; over TLS the record's authentication refuses it first and the agent
  // resumes on a new connection. Both end with the image exactly as published.
  it.each([
    ['plain http, so the chunk digest catches it', false],
    ['TLS, which refuses the record', true],
  ])(
    'fetches a release through repeated cuts and a tampered byte (%s), loads it and serves it',
    async (_, tls) => {
      const app = unique('xfer');
      removeAppContainers(app);
      const tag = `tender-test/xfer:${Date.now()}`;
      const id = buildBusyboxImage({ tag, body: `transfer ${tag}\n` });
      const shore = await startShore({ tls });
      const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(shore.url).port) }, { cutAfterBytes: 60_000 });
      let tampered = false;
      link.options.tamper = (piece, offset) => {
        // Flip one byte deep inside the first large response: a chunk that no longer matches its digest.
        if (!tampered && offset + piece.byteLength > 30_000 && offset <= 30_000 && piece.byteLength > 1000) {
          tampered = true;
          const copy = Buffer.from(piece);
          copy[30_000 - offset] = copy[30_000 - offset]! ^ 0xff;
          return copy;
        }
        return piece;
      };
      const linkPort = await link.start();
      // Enrolled directly, then reaching the hub only through the link.
      const vessel = await enrolVessel(shore, 'ship-x', { hub: shore.via(linkPort) });
      const port = await freePort();
      await vessel.startRouter();
      vessel.startAgent();
      const pub = await tender(
        [
          'release',
          'publish',
          '--compose',
          composeFile(shore.dir, 'x1', tag, port, app),
          '--key',
          shore.releaseKey,
          '--version',
          '1',
        ],
        shore.env,
      );
      expect(pub.code, pub.stderr).toBe(0);
      // The shore engine and the vessel engine are the same here: remove the image so the vessel must fetch it.
      rmi(tag);
      expect((await tender(['rollout', 'start', `${app}@1`, '--target', 'vessel:ship-x'], shore.env)).code).toBe(0);
      await waitServing(port, `transfer ${tag}`, vessel, 120_000);
      expect(JSON.parse(execFileSync('docker', ['image', 'inspect', tag], { encoding: 'utf8' }))[0].Id).toBe(id);
      const log = vessel.agent!.lines.join('\n');
      // Over TLS the changed record ends that connection like a cut (the agent resumes at its byte): the
      // byte never reaches the content layer.
      if (tls) expect(log).not.toMatch(/chunk failed verification/);
      else expect(log).toMatch(/chunk failed verification; it will be fetched again/);
      expect(link.stats.cuts).toBeGreaterThanOrEqual(10);
      expect(tampered).toBe(true);
      // The small manifest rode in the desired state: the vessel never asked the release route for it.
      const asked = shore.hub.lines
        .filter((l) => l.includes('"incoming request"'))
        .map((l) => JSON.parse(l).req.url as string);
      expect(asked.some((u) => u.startsWith(paths.vesselDesired('ship-x', { with: 'manifest' })))).toBe(true);
      expect(asked.filter((u) => u.startsWith(`${paths.vessel('ship-x')}/releases/`))).toEqual([]);
      await link.close();
      removeAppContainers(app);
    },
    180_000,
  );
});

describe('release transfer: restarts and refusals', () => {
  it(
    'resumes after the agent and then the hub are restarted mid-transfer, without ' + 're-downloading what it had',
    async () => {
      const app = unique('xfer2');
      removeAppContainers(app);
      const tag = `tender-test/xfer2:${Date.now()}`;
      buildBusyboxImage({ tag, body: `resume ${tag}\n` });
      const shore = await startShore();
      // A slow link (1 MB/s) so the restarts land mid-transfer.
      const link = new LinkSim(
        { host: '127.0.0.1', port: Number(new URL(shore.url).port) },
        { bytesPerSecond: 400_000 },
      );
      const linkPort = await link.start();
      // Enrolled directly, then reaching the hub only through the link.
      const vessel = await enrolVessel(shore, 'ship-r', { hub: shore.via(linkPort) });
      const port = await freePort();
      await vessel.startRouter();
      vessel.startAgent();
      const pub = await tender(
        [
          'release',
          'publish',
          '--compose',
          composeFile(shore.dir, 'r1', tag, port, app),
          '--key',
          shore.releaseKey,
          '--version',
          '1',
          '--json',
        ],
        shore.env,
      );
      expect(pub.code, pub.stderr).toBe(0);
      rmi(tag);
      expect((await tender(['rollout', 'start', `${app}@1`, '--target', 'vessel:ship-r'], shore.env)).code).toBe(0);
      const partSize = () => partBytes(vessel);
      await eventually(async () => partSize() > 200_000, 60_000, 100);
      const before = link.stats.down;
      await vessel.agent!.stop('SIGKILL');
      vessel.startAgent();
      await eventually(async () => partSize() > 500_000, 60_000, 100);
      const hubPort = new URL(shore.url).port;
      await shore.hub.stop('SIGKILL');
      await new Promise((r) => setTimeout(r, 1500));
      await shore.start(`127.0.0.1:${hubPort}`);
      await waitServing(port, `resume ${tag}`, vessel, 120_000);
      // Whole-transfer bytes stay close to one copy of the compressed chunks: nothing re-fetched from zero.
      const need = (JSON.parse(pub.stdout) as { uploadedBytes: number }).uploadedBytes;
      expect(before).toBeGreaterThan(100_000);
      expect(link.stats.down).toBeLessThan(need * 1.15 + 50_000);
      await link.close();
      removeAppContainers(app);
    },
    240_000,
  );

  it(
    'drops a download that a silent link (a black hole) stalls, and resumes at its ' + 'byte when the link returns',
    async () => {
      const app = unique('xfer5');
      removeAppContainers(app);
      const tag = `tender-test/xfer5:${Date.now()}`;
      buildBusyboxImage({ tag, body: `silence ${tag}\n` });
      const shore = await startShore();
      const link = new LinkSim(
        { host: '127.0.0.1', port: Number(new URL(shore.url).port) },
        { bytesPerSecond: 200_000 },
      );
      const linkPort = await link.start();
      const vessel = await enrolVessel(shore, 'ship-s', { hub: shore.via(linkPort), stallSeconds: 3 });
      const port = await freePort();
      await vessel.startRouter();
      vessel.startAgent();
      const pub = await tender(
        [
          'release',
          'publish',
          '--compose',
          composeFile(shore.dir, 's1', tag, port, app),
          '--key',
          shore.releaseKey,
          '--version',
          '1',
          '--json',
        ],
        shore.env,
      );
      expect(pub.code, pub.stderr).toBe(0);
      rmi(tag);
      expect((await tender(['rollout', 'start', `${app}@1`, '--target', 'vessel:ship-s'], shore.env)).code).toBe(0);
      await eventually(async () => partBytes(vessel) > 150_000, 60_000, 50);
      // The link goes silent: no reset, no FIN. Only the agent's own watchdog can tell.
      link.set('blackhole');
      const held = partBytes(vessel);
      const stalled = await vessel.agent!.waitFor((l) => l.includes('stalled (nothing received'), 30_000);
      expect(JSON.parse(stalled).level).toBeLessThanOrEqual(30);
      expect(partBytes(vessel)).toBeGreaterThanOrEqual(held);
      link.set('up');
      await waitServing(port, `silence ${tag}`, vessel, 120_000);
      const need = (JSON.parse(pub.stdout) as { uploadedBytes: number }).uploadedBytes;
      const cuts = vessel.agent!.lines.filter((l) => /stalled|download cut|pack/.test(l));
      expect(link.stats.down, `${JSON.stringify(link.stats)}\n${cuts.join('\n')}`).toBeLessThan(need * 1.15 + 50_000);
      await link.close();
      removeAppContainers(app);
    },
    180_000,
  );

  it('fetches nothing for a release it cannot verify, and keeps serving what it runs', async () => {
    const app = unique('xfer3');
    removeAppContainers(app);
    const shore = await startShore();
    const other = await startShore();
    const vessel = await enrolVessel(shore, 'ship-b');
    const port = await freePort();
    await vessel.startRouter();
    vessel.startAgent();
    const okTag = `tender-test/xfer3:ok${Date.now()}`;
    buildBusyboxImage({ tag: okTag, body: 'trusted\n' });
    await (
      await import('../helpers/fleet.js')
    ).publishAndRollout(shore, composeFile(shore.dir, 'ok', okTag, port, app), '1', 'vessel:ship-b');
    await waitServing(port, 'trusted', vessel);
    // The hub is made to hold a release signed by keys the vessel does not trust (a compromised hub):
    // the hub's root is swapped for another fleet's.
    const badTag = `tender-test/xfer3:bad${Date.now()}`;
    buildBusyboxImage({ tag: badTag, body: 'untrusted\n' });
    const hubPort = new URL(shore.url).port;
    await shore.hub.stop();
    requireTool('sqlite3');
    execFileSync('sqlite3', [
      join(shore.dir, 'hub', 'hub.db'),
      `DELETE FROM roots; INSERT INTO roots (version, envelope, expires, added_at) ` +
        `VALUES (1, readfile('${join(other.dir, 'keys', 'root.json')}'), ` +
        `'2099-01-01T00:00:00Z', 0);`,
    ]);
    writeFileSync(join(shore.dir, 'keys', 'root.json'), readFileSync(join(other.dir, 'keys', 'root.json')));
    await shore.start(`127.0.0.1:${hubPort}`);
    const pub = await tender(
      [
        'release',
        'publish',
        '--compose',
        composeFile(shore.dir, 'bad', badTag, port, app),
        '--key',
        other.releaseKey,
        '--version',
        '2',
      ],
      shore.env,
    );
    expect(pub.code, pub.stderr).toBe(0);
    rmi(badTag);
    expect((await tender(['rollout', 'start', `${app}@2`, '--target', 'vessel:ship-b'], shore.env)).code).toBe(0);
    const st = await eventually(async () => {
      const s = await vessel.status();
      return s.lastResult?.result === 'refused' && s;
    }, 30_000);
    expect(st.lastResult.reason).toMatch(/release 2 refused: release threshold not met/);
    expect(st.release.current).toBe('1');
    expect(await (await import('../helpers/fleet.js')).getBody(port)).toBe('trusted');
    // Only the manifest was downloaded (and dropped once refused): no pack, no chunk.
    const fetchDir = join(vessel.dataDir, 'fetch');
    expect(existsSync(fetchDir) ? readdirSync(fetchDir) : []).toEqual([]);
    const chunkDir = join(vessel.dataDir, 'chunks');
    expect(existsSync(chunkDir) ? readdirSync(chunkDir) : []).toEqual([]);
    removeAppContainers(app);
  }, 180_000);

  it('holds the disk guard: short of space it fetches nothing, raises an event and says why', async () => {
    const app = unique('xfer4');
    removeAppContainers(app);
    const shore = await startShore();
    // A margin no disk has: the guard must trip before a single chunk moves.
    const vessel = await enrolVessel(shore, 'ship-d', { diskMarginBytes: 10 ** 15 });
    const port = await freePort();
    await vessel.startRouter();
    vessel.startAgent();
    const tag = `tender-test/xfer4:${Date.now()}`;
    buildBusyboxImage({ tag, body: 'never fetched\n' });
    const pub = await tender(
      [
        'release',
        'publish',
        '--compose',
        composeFile(shore.dir, 'd', tag, port, app),
        '--key',
        shore.releaseKey,
        '--version',
        '1',
      ],
      shore.env,
    );
    expect(pub.code, pub.stderr).toBe(0);
    rmi(tag);
    expect((await tender(['rollout', 'start', `${app}@1`, '--target', 'vessel:ship-d'], shore.env)).code).toBe(0);
    const st = await eventually(async () => {
      const s = await vessel.status();
      return s.lastResult?.reason?.includes('not enough disk') && s;
    }, 30_000);
    expect(st.lastResult.reason).toMatch(/not enough disk for release 1: needs \d+ MB .* MB free/);
    expect(st.release.current).toBeNull();
    // The event reached shore; no pack was asked for and no chunk landed on board.
    const events = await eventually(async () => {
      const r = await fetch(`${shore.url}${paths.vesselEvents('ship-d', { limit: 100 })}`, {
        headers: { authorization: `Bearer ${shore.env.TENDER_TOKEN}` },
      });
      const ev = ((await r.json()) as { events: { type: string; data: { reason?: string } }[] }).events.filter(
        (e) => e.type === 'transfer.refused',
      );
      return ev.length > 0 && ev;
    }, 30_000);
    expect(events[0]!.data.reason).toMatch(/not enough disk/);
    const packs = execFileSync('sqlite3', [join(shore.dir, 'hub', 'hub.db'), 'SELECT count(*) FROM packs'])
      .toString()
      .trim();
    expect(packs).toBe('0');
    const chunkDir = join(vessel.dataDir, 'chunks');
    expect(existsSync(chunkDir) ? readdirSync(chunkDir) : []).toEqual([]);
  }, 120_000);
});
