import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createHubFetch } from '../../shared/tls/hub-fetch.js';
import { issueCert, makeCa } from '../helpers/tls.js';

/** TCP segments the sockets to `port` have sent so far (`ss` reads the kernel's per-socket counter). */
function segmentsSentTo(port: number): number {
  const out = execFileSync('ss', ['-tnio', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  return [...out.matchAll(/segs_out:(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

/**
 * A connection kept open for the next request costs nothing while it waits: no TCP keep-alive probe every
 * second (node's default for a keep-alive agent), each one 52 bytes out and 52 back on a metered link.
 */
describe('an idle connection to the hub', () => {
  it('sends no segment while it waits in the pool for the next request', async () => {
    const ca = makeCa();
    const cert = issueCert(ca);
    const server = createServer(
      { cert: readFileSync(cert.chainFile), key: readFileSync(cert.keyFile), keepAliveTimeout: 60_000 },
      (_req, res) => res.end('ok'),
    );
    let connections = 0;
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      server.closeAllConnections();
      server.close();
    });
    const port = (server.address() as AddressInfo).port;
    const fetch = createHubFetch({ ca: [ca.pem] });
    expect(await (await fetch(`https://127.0.0.1:${port}/`)).text()).toBe('ok');
    // The last ACKs of the exchange (delayed ACK, session tickets) go first.
    await new Promise((r) => setTimeout(r, 500));
    const before = segmentsSentTo(port);
    expect(before).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 3_500));
    // Still pooled (the next request reuses it), and silent meanwhile.
    expect(segmentsSentTo(port)).toBe(before);
    expect(await (await fetch(`https://127.0.0.1:${port}/`)).text()).toBe('ok');
    expect(segmentsSentTo(port)).toBeGreaterThan(before);
    expect(connections).toBe(1);
  });
});
