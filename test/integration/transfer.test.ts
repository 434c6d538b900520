import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { composeFile, enrolVessel, freePort, startShore, waitServing } from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';
import { LinkSim } from '../link-sim.js';

/**
 * A release travels from the publisher through the hub to a vessel that does not have its images: the
 * vessel fetches the chunks in packs through a link simulator that cuts and tampers, verifies every
 * chunk and layer, `docker load`s the images and swaps to them.
 */
function rmi(tag: string) {
  execFileSync('docker', ['rmi', '-f', tag], { stdio: 'ignore' });
}

describe('release transfer', () => {
  it('fetches a release through repeated cuts and a tampered byte, verifies it, loads it and serves it', async () => {
    const app = 'xfer';
    removeAppContainers(app);
    const tag = `tender-test/xfer:${Date.now()}`;
    const id = buildBusyboxImage({ tag, body: `transfer ${tag}\n` });
    const shore = await startShore();
    const link = new LinkSim({ host: '127.0.0.1', port: Number(new URL(shore.url).port) }, { cutAfterBytes: 150_000 });
    let tampered = false;
    link.options.tamper = (piece, offset) => {
      // Flip one byte deep inside the first large response: a chunk that no longer matches its digest.
      if (!tampered && offset + piece.byteLength > 60_000 && offset <= 60_000 && piece.byteLength > 1000) {
        tampered = true;
        const copy = Buffer.from(piece);
        copy[60_000 - offset] = copy[60_000 - offset]! ^ 0xff;
        return copy;
      }
      return piece;
    };
    const linkPort = await link.start();
    const vessel = await enrolVessel(shore, 'ship-x');
    const cfg = JSON.parse(readFileSync(vessel.config, 'utf8'));
    writeFileSync(vessel.config, JSON.stringify({ ...cfg, hub: `http://127.0.0.1:${linkPort}` }));
    const port = await freePort();
    await vessel.startRouter();
    vessel.startAgent();
    const pub = await tender(['release', 'publish', '--compose', composeFile(shore.dir, 'x1', tag, port, app), '--key', shore.releaseKey, '--version', '1'], shore.env);
    expect(pub.code, pub.stderr).toBe(0);
    // The shore engine and the vessel engine are the same here: remove the image so the vessel must fetch it.
    rmi(tag);
    expect((await tender(['rollout', 'start', 'xfer@1', '--target', 'vessel:ship-x'], shore.env)).code).toBe(0);
    await waitServing(port, `transfer ${tag}`, 120_000);
    expect(JSON.parse(execFileSync('docker', ['image', 'inspect', tag], { encoding: 'utf8' }))[0].Id).toBe(id);
    const log = vessel.agent!.lines.join('\n');
    expect(log).toMatch(/chunk failed verification; it will be fetched again/);
    expect(link.stats.cuts).toBeGreaterThan(3);
    expect(tampered).toBe(true);
    await link.close();
    removeAppContainers(app);
  }, 180_000);
});
