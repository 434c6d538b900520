import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHubTls, loadTicketKeys } from '../../hub/tls.js';
import { desiredStateSchema } from '../../shared/protocol/bodies.js';
import type { HubTlsDocument } from '../../shared/protocol/hub-tls.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { paths } from '../../shared/protocol/routes.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { enrolVessel, startShore, vesselReport } from '../helpers/fleet.js';
import { enrolVessel as enrolTestVessel, startHub } from '../helpers/hub.js';
import { eventually, tender } from '../helpers/proc.js';
import { issueCert, makeCa, startTlsProxy, type TestCa } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';

const announcement = (cas: TestCa[], sequence: number): HubTlsDocument => ({
  _type: 'hub-tls',
  spec: 1,
  sequence,
  createdAt: '2026-12-03T00:00:00Z',
  cas: cas.map((c) => c.pem),
});

describe('hub: announcing the CAs vessels pin', () => {
  it('stores a signed announcement, refuses one that would strand the fleet, puts it in desired state', async () => {
    const [ca1, ca2] = [makeCa('tender-one'), makeCa('tender-two')];
    const cert = issueCert(ca1);
    const hub = await startHub({
      tls: {
        state: loadHubTls({ certFile: cert.chainFile, keyFile: cert.keyFile }),
        ticketKeys: loadTicketKeys(tempDir()),
      },
    });
    const put = (doc: unknown, key: PrivateKey = hub.keys.release[0]!, role: 'operator' | 'viewer' = 'operator') =>
      hub.app.inject({
        method: 'PUT',
        url: paths.hubTls(),
        headers: { authorization: `Bearer ${hub.token(role)}`, 'content-type': MEDIA.envelope },
        payload: envelopeBytes(signEnvelope('hub-tls', doc, [key])),
      });
    const view = async () =>
      (
        await hub.app.inject({ url: paths.hubTls(), headers: { authorization: `Bearer ${hub.token('viewer')}` } })
      ).json();

    // The new CA alone while the hub serves under the old: every vessel would refuse it next time.
    const strand = await put(announcement([ca2], 10));
    expect(strand.statusCode, strand.body).toBe(409);
    expect(strand.json().message).toMatch(/this hub serves under SHA256:.*list both CAs/);
    expect(await view()).toEqual({ announced: null, serving: ca1.pin });
    // Not signed by a release key of the root, or by a viewer: refused, nothing stored.
    expect((await put(announcement([ca1, ca2], 10), generateKey().key)).statusCode).toBe(400);
    expect((await put(announcement([ca1, ca2], 10), undefined, 'viewer')).statusCode).toBe(403);

    const ok = await put(announcement([ca1, ca2], 10));
    expect(ok.statusCode, ok.body).toBe(201);
    expect(ok.json()).toEqual({ sequence: 10, pins: [ca1.pin, ca2.pin], created: true });
    expect((await put(announcement([ca1, ca2], 10))).json().created).toBe(false);
    expect((await put(announcement([ca1], 9))).statusCode).toBe(409);
    expect((await view()).announced).toMatchObject({ sequence: 10, pins: [ca1.pin, ca2.pin] });

    const v = await enrolTestVessel(hub, 'ship-a');
    const path = paths.vesselDesired('ship-a');
    const d = await hub.app.inject({ url: path, headers: v.sign('GET', path).headers });
    const state = desiredStateSchema.parse(d.json());
    expect(Buffer.from(state.hubTls!, 'base64')).toEqual(
      envelopeBytes(signEnvelope('hub-tls', announcement([ca1, ca2], 10), [hub.keys.release[0]!])),
    );
  });
});

/**
 * A CA rotation with real processes (hub, agent, ops CLI) and the ship offline through the switch: the
 * shore announces old and new CA, the vessel pins both, goes offline; the hub is given a certificate of
 * the new CA (SIGHUP) and the vessel, back online, talks to it at once. Then the new CA alone, a renewal of
 * the leaf while offline, and a man in the middle with a third CA, refused with nothing sent.
 */
describe('journey: the hub certificate renewed and its CA rotated while a vessel is at sea', () => {
  it('announces, switches, renews and refuses a stranger, with the vessel offline through each switch', async () => {
    const shore = await startShore();
    const ca2 = makeCa('tender-rotated');
    const port = new URL(shore.url).port;
    // The ops machine trusts both CAs through the switch (TENDER_CA may hold several).
    const both = join(shore.dir, 'both-cas.pem');
    writeFileSync(both, shore.ca!.pem + ca2.pem);
    shore.env.TENDER_CA = both;
    const v = await enrolVessel(shore, 'ship-rot');
    const status = () => v.status();
    const report = () => vesselReport(v);
    const online = async (since: number) =>
      eventually(async () => {
        const s = await status();
        return s.link.lastOk !== null && Date.parse(s.link.lastOk) > since && s;
      }, 60_000).catch(async (err: Error) => {
        throw new Error(`${err.message}: the vessel did not reach the hub; ${await report()}`);
      });
    v.startAgent();
    await online(0);
    expect((await status()).hubLink.pins).toHaveLength(1);

    // 1. Old and new CA announced (signed on the ops machine with a release key): the vessel pins both.
    const cli = async (args: string[]) => {
      const r = await tender(args, shore.env);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const ca1File = join(shore.dir, 'ca1.pem');
    copyFileSync(shore.ca!.certFile, ca1File);
    const out = await cli([
      'tls',
      'announce',
      '--pin-ca',
      ca1File,
      '--pin-ca',
      ca2.certFile,
      '--key',
      shore.releaseKey,
    ]);
    expect(out).toMatch(/announced hub-tls #\d+ on https:.*vessels pin SHA256:/);
    await eventually(async () => (await status()).hubLink.pins.length === 2, 60_000);

    // 2. At sea: the agent stops; ashore the hub switches to a certificate of the new CA.
    await v.agent!.stop();
    const next = issueCert(ca2);
    copyFileSync(next.chainFile, shore.cert!.chainFile);
    copyFileSync(next.keyFile, shore.cert!.keyFile);
    shore.hub.proc.kill('SIGHUP');
    await shore.hub.waitFor((l) => l.includes('TLS certificate reloaded'), 30_000);
    // 3. Back online: the vessel trusts the new CA it was told of.
    const back = Date.now();
    v.startAgent();
    await online(back);

    // 4. The new CA alone: old pins dropped.
    await cli(['tls', 'announce', '--pin-ca', ca2.certFile, '--key', shore.releaseKey, '--sequence', String(2 ** 39)]);
    await eventually(async () => {
      const pins = (await status()).hubLink.pins as string[];
      return pins.length === 1 && pins;
    }, 60_000);

    // 5. A renewed leaf of the same CA while the vessel is offline (what certbot does every 60 days).
    await v.agent!.stop();
    const renewed = issueCert(ca2);
    copyFileSync(renewed.chainFile, shore.cert!.chainFile);
    copyFileSync(renewed.keyFile, shore.cert!.keyFile);
    shore.hub.proc.kill('SIGHUP');
    await eventually(async () => shore.hub.lines.filter((l) => l.includes('TLS certificate reloaded')).length === 2);
    const again = Date.now();
    v.startAgent();
    await online(again);

    // 6. A hub switched to a CA never announced keeps its old certificate (and says why).
    const stranger = makeCa('tender-never-announced');
    const unannounced = issueCert(stranger);
    copyFileSync(unannounced.chainFile, shore.cert!.chainFile);
    copyFileSync(unannounced.keyFile, shore.cert!.keyFile);
    shore.hub.proc.kill('SIGHUP');
    const refused = await shore.hub.waitFor((l) => l.includes('TLS certificate not reloaded'), 30_000);
    expect(JSON.parse(refused).reason).toMatch(/is not announced to the vessels \(hub-tls #\d+ lists SHA256:/);
    const still = Date.now();
    await online(still);

    // 7. A man in the middle with that third CA: refused, nothing in clear, the link says why.
    await v.agent!.stop();
    const mitm = await startTlsProxy(unannounced, Number(port));
    const config = JSON.parse(readFileSync(v.config, 'utf8')) as Record<string, unknown>;
    writeFileSync(v.config, JSON.stringify({ ...config, hub: mitm.url }));
    v.startAgent();
    const down = await eventually(async () => {
      const s = await status();
      return s.link.state === 'down' && /certificate|verify|self.signed/i.test(s.link.lastError ?? '') && s;
    }, 60_000);
    expect(down.link.lastError).not.toContain('\n');
    expect(mitm.received().byteLength).toBe(0);
  }, 300_000);
});
