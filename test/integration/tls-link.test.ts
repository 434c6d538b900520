import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startHub, type TestHub } from '../helpers/hub.js';
import { issueCert, makeCa, type TestCa, type TestCert } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';
import { loadHubTls, loadTicketKeys } from '../../hub/tls.js';
import { completePendingEnrolment, enrolFromFile, enrolOnline } from '../../agent/enrol.js';
import { loadAgentConfig, vesselPaths } from '../../agent/config.js';
import { hubFetchFor, linkSecurity } from '../../agent/hub-link.js';
import { HubClient, HubUnreachableError } from '../../agent/hub-client.js';
import { loadPrivateKey } from '../../shared/trust/keys.js';
import { parseEnrolmentToken } from '../../shared/protocol/enrolment-token.js';
import { paths } from '../../shared/protocol/routes.js';
import { newLinkMeter } from '../../shared/tls/hub-fetch.js';

/** A hub serving HTTPS with `cert` (chain: leaf + CA) on 127.0.0.1:0. */
async function tlsHub(cert: TestCert): Promise<{ hub: TestHub; url: string }> {
  const dataDir = tempDir('tender-tls-hub-');
  const state = loadHubTls({ certFile: cert.chainFile, keyFile: cert.keyFile });
  const hub = await startHub({ tls: { state, ticketKeys: loadTicketKeys(dataDir) } });
  return { hub, url: await hub.listen() };
}

async function addVessel(hub: TestHub, name: string, offline = false) {
  const r = await hub.app.inject({
    method: 'POST',
    url: paths.vessels(),
    headers: { authorization: `Bearer ${hub.token('operator')}` },
    payload: { name, offline },
  });
  expect(r.statusCode, r.body).toBe(201);
  return r.json() as { token: string; root?: string; hubCa?: string; expiresAt: string };
}

function vesselDirs(name: string) {
  const dir = tempDir(`tender-tls-${name}-`);
  return { configPath: join(dir, 'agent.json'), dataDir: join(dir, 'state') };
}

function clientFor(configPath: string, meter = newLinkMeter()) {
  const config = loadAgentConfig(configPath);
  const key = loadPrivateKey(vesselPaths(config.dataDir).key);
  return {
    config,
    meter,
    client: new HubClient(config.hub, config.vesselId!, key, 0, () => {}, undefined, hubFetchFor(config, meter)),
  };
}

describe('the hub serves TLS 1.3 and a vessel pins it at enrolment', () => {
  let ca: TestCa;

  it('enrols online against the certificate its token pins, then polls over TLS 1.3 with resumption', async () => {
    ca = makeCa();
    const { hub, url } = await tlsHub(issueCert(ca));
    const issued = await addVessel(hub, 'tls-1');
    expect(parseEnrolmentToken(issued.token)?.tlsPin).toBe(ca.pin);

    const where = vesselDirs('tls-1');
    const config = await enrolOnline({ hub: url, token: issued.token, ...where });
    expect(config.hubTrust).toBe('pinned');
    expect(readFileSync(vesselPaths(config.dataDir).hubCa, 'utf8').trim()).toBe(ca.pem.trim());
    expect(linkSecurity(config)).toMatchObject({ encrypted: true, trust: 'pinned' });

    const { client, meter } = clientFor(where.configPath);
    expect(await client.getDesired('tls-1')).toBeDefined();
    expect(meter.fullHandshakes).toBe(1);
    // A second client (an agent restarted) resumes from the ticket kept on disk.
    expect(existsSync(vesselPaths(config.dataDir).tlsSession)).toBe(true);
    const again = clientFor(where.configPath);
    expect(await again.client.getDesired('tls-1')).toBeDefined();
    expect(again.meter).toMatchObject({ fullHandshakes: 0, resumedHandshakes: 1 });
  });

  it('enrols offline from a file that carries the pinned CA, and completes on first contact', async () => {
    ca = makeCa();
    const { hub, url } = await tlsHub(issueCert(ca));
    const issued = await addVessel(hub, 'tls-off', true);
    expect(issued.hubCa?.trim()).toBe(ca.pem.trim());
    const where = vesselDirs('tls-off');
    const config = enrolFromFile({
      file: {
        kind: 'tender-enrolment',
        version: 1,
        hub: url,
        vessel: 'tls-off',
        token: issued.token,
        expiresAt: issued.expiresAt,
        root: issued.root!,
        hubCa: issued.hubCa,
      },
      ...where,
    });
    expect(config.hubTrust).toBe('pinned');
    const done = await completePendingEnrolment(config, where.configPath);
    expect(done.vesselId).toMatch(/^v_/);
    expect(await clientFor(where.configPath).client.getDesired('tls-off')).toBeDefined();
    // A file whose CA is not the one its token pins is refused before anything is written.
    const other = makeCa('other-ca');
    const bad = vesselDirs('tls-off-bad');
    expect(() =>
      enrolFromFile({
        file: {
          kind: 'tender-enrolment',
          version: 1,
          hub: url,
          vessel: 'tls-off',
          token: issued.token,
          expiresAt: issued.expiresAt,
          root: issued.root!,
          hubCa: other.pem,
        },
        ...bad,
      }),
    ).toThrow(/the token pins SHA256:/);
    expect(existsSync(bad.configPath)).toBe(false);
  });

  it('refuses an http:// hub whose token pins nothing unless told --insecure-http, and says so in status', async () => {
    const hub = await startHub();
    const url = await hub.listen();
    const issued = await addVessel(hub, 'plain-1');
    expect(parseEnrolmentToken(issued.token)?.tlsPin).toBeUndefined();
    const where = vesselDirs('plain-1');
    await expect(enrolOnline({ hub: url, token: issued.token, ...where })).rejects.toThrow(/--insecure-http/);
    const config = await enrolOnline({ hub: url, token: issued.token, ...where, insecureHttp: true });
    expect(config.hubTrust).toBe('insecure-http');
    expect(linkSecurity(config)).toMatchObject({ encrypted: false });
    expect(linkSecurity(config).note).toMatch(/NOT ENCRYPTED/);
    // The same config without the flag (one written before TLS existed): nothing is sent.
    const legacy = { ...config, hubTrust: undefined };
    const key = loadPrivateKey(vesselPaths(config.dataDir).key);
    const client = new HubClient(url, config.vesselId!, key, 0, () => {}, undefined, hubFetchFor(legacy));
    await expect(client.getDesired('plain-1')).rejects.toThrow(HubUnreachableError);
    await expect(client.getDesired('plain-1')).rejects.toThrow(/refusing to send anything in clear/);
  });

  it('refuses to send a pinned token to an http:// URL', async () => {
    ca = makeCa();
    const { hub } = await tlsHub(issueCert(ca));
    const issued = await addVessel(hub, 'tls-2');
    await expect(
      enrolOnline({ hub: 'http://127.0.0.1:9', token: issued.token, ...vesselDirs('tls-2') }),
    ).rejects.toThrow(/not https:\/\/; refusing to send it in clear/);
  });
});
