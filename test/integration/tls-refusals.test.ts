import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startHub, type TestHub } from '../helpers/hub.js';
import { issueCert, makeCa, startPlainTrap, startStallServer, startTlsProxy } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';
import { loadHubTls, loadTicketKeys } from '../../hub/tls.js';
import { enrolOnline } from '../../agent/enrol.js';
import { vesselPaths, type AgentConfig } from '../../agent/config.js';
import { hubFetchFor, pinnedCas } from '../../agent/hub-link.js';
import { HubClient, HubUnreachableError } from '../../agent/hub-client.js';
import { loadPrivateKey } from '../../shared/trust/keys.js';
import { paths } from '../../shared/protocol/routes.js';
import { createHubFetch } from '../../shared/tls/hub-fetch.js';
import { toPem } from '../../shared/tls/certs.js';

/** A TLS hub and a vessel enrolled against it (pinned to `ca`), and a client for any URL in the hub's place. */
async function pinnedVessel() {
  const ca = makeCa();
  const cert = issueCert(ca);
  const dataDir = tempDir('tender-tls-hub-');
  const hub: TestHub = await startHub({
    tls: {
      state: loadHubTls({ certFile: cert.chainFile, keyFile: cert.keyFile }),
      ticketKeys: loadTicketKeys(dataDir),
    },
  });
  const url = await hub.listen();
  const add = await hub.app.inject({
    method: 'POST',
    url: paths.vessels(),
    headers: { authorization: `Bearer ${hub.token('operator')}` },
    payload: { name: 'ship-t' },
  });
  const dir = tempDir('tender-tls-v-');
  const config = await enrolOnline({
    hub: url,
    token: add.json().token,
    configPath: join(dir, 'agent.json'),
    dataDir: join(dir, 'state'),
  });
  const clientAt = (hubUrl: string) =>
    new HubClient(
      hubUrl,
      config.vesselId!,
      loadPrivateKey(vesselPaths(config.dataDir).key),
      0,
      () => {},
      undefined,
      hubFetchFor({ ...config, hub: hubUrl } as AgentConfig),
    );
  return { ca, hub, url, config, clientAt, port: Number(new URL(url).port) };
}

/** The refusal: a HubUnreachableError (the shipper keeps its batch, the agent keeps serving), in one line. */
async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubUnreachableError);
  const message = (err as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('a vessel refuses a hub its pin does not vouch for, and sends nothing in clear', () => {
  it('refuses a man in the middle with another CA, an expired certificate and one for another name', async () => {
    const v = await pinnedVessel();
    const mitm = await startTlsProxy(issueCert(makeCa('ground-station-ca')), v.port);
    expect(await refusal(v.clientAt(mitm.url).getDesired('ship-t'))).toMatch(
      /hub certificate is not signed by the CA pinned at enrolment.*refusing the link/,
    );
    // Telemetry too: the batch is not sent, so it stays in the outbox (the shipper retries on unreachable).
    const tele = v.clientAt(mitm.url).postTelemetry('ship-t', Buffer.from('x'), 'gzip', 5000);
    await refusal(tele);
    expect(mitm.received().byteLength).toBe(0);

    const expired = await startTlsProxy(issueCert(v.ca, { days: -1 }), v.port);
    expect(await refusal(v.clientAt(expired.url).getDesired('ship-t'))).toMatch(/hub certificate expired/);
    expect(expired.received().byteLength).toBe(0);

    const elsewhere = await startTlsProxy(issueCert(v.ca, { names: ['DNS:other.example'] }), v.port);
    expect(await refusal(v.clientAt(elsewhere.url).getDesired('ship-t'))).toMatch(/another name/);
    expect(elsewhere.received().byteLength).toBe(0);

    // The real hub still answers the same vessel: a refusal changes nothing it keeps.
    expect(await v.clientAt(v.url).getDesired('ship-t')).toBeDefined();
    expect(pinnedCas(v.config.dataDir).map(toPem)).toEqual([v.ca.pem.trim() + '\n']);
  });

  it('refuses a downgrade to plain HTTP: only a ClientHello reaches a plain server, and http:// is never tried', async () => {
    const v = await pinnedVessel();
    const plain = await startPlainTrap();
    expect(await refusal(v.clientAt(plain.url).getDesired('ship-t'))).toMatch(/did not answer TLS 1.3.*nothing sent/);
    const got = plain.received();
    expect(got[0]).toBe(0x16); // a TLS handshake record: the ClientHello
    expect(got.toString('latin1')).not.toMatch(/HTTP\/1\.1|x-tender|ship-t|desired/i);
    // The same vessel told the hub is now http:// (a config edited, a redirect followed by hand): refused.
    const httpUrl = v.url.replace('https://', 'http://');
    expect(await refusal(v.clientAt(httpUrl).getDesired('ship-t'))).toMatch(/refusing to send anything in clear/);
  });

  it('gives up a stalled handshake within its deadline and says so', async () => {
    const v = await pinnedVessel();
    const stall = await startStallServer();
    const fetcher = createHubFetch({ ca: [v.ca.pem], handshakeTimeoutMs: 1500 });
    const started = Date.now();
    const client = new HubClient(
      stall.url,
      v.config.vesselId!,
      loadPrivateKey(vesselPaths(v.config.dataDir).key),
      0,
      () => {},
      undefined,
      fetcher,
    );
    expect(await refusal(client.getDesired('ship-t'))).toMatch(/TLS handshake with the hub stalled \(nothing in 2 s\)/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(stall.received()[0]).toBe(0x16);
  });
});
