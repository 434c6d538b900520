import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:https';
import { describe, expect, it } from 'vitest';
import { CONSOLE_PASSWORD, enrolVessel, startShore } from '../helpers/fleet.js';
import { tender } from '../helpers/proc.js';

/** GET the console over HTTPS trusting only `ca`: status, body and the certificate it showed. */
function getTls(url: string, ca: string): Promise<{ status: number; body: string; fingerprint: string }> {
  const auth = `Basic ${Buffer.from(`crew:${CONSOLE_PASSWORD}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { authorization: auth } }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The crew console over HTTPS (issue 18): the agent makes itself a certificate, serves the console with
 * it, `tender status` shows its fingerprint for the crew to compare, and the same certificate is served
 * after a restart. Plain HTTP to it gets nothing.
 */
describe('crew console over TLS', () => {
  it('serves with a certificate of its own, its fingerprint in tender status, kept across restarts', async () => {
    const shore = await startShore();
    const v = await enrolVessel(shore, 'ship-tls');
    const cfg = JSON.parse(readFileSync(v.config, 'utf8'));
    writeFileSync(v.config, JSON.stringify({ ...cfg, console: { ...cfg.console, tls: true } }));
    const https = v.consoleUrl.replace('http://', 'https://');
    const before = await tender(['status', '--config', v.config]);
    expect(before.stdout).toMatch(
      /^console {4}https:\/\/127\.0\.0\.1:\d+\/ \(TLS, certificate made at the agent's next start\)$/m,
    );

    let agent = v.startAgent();
    await agent.waitFor((l) => l.includes('crew console listening'));
    const pem = readFileSync(join(v.dataDir, 'console-tls.pem'), 'utf8');
    expect(readFileSync(join(v.dataDir, 'console-tls.key')).length > 0).toBe(true);
    const first = await getTls(https, pem);
    expect(first.status).toBe(200);
    expect(first.body).toContain('ship-tls');
    const status = await tender(['status', '--config', v.config]);
    expect(status.stdout).toContain(`console    ${https}/ (TLS, certificate SHA256:${first.fingerprint})`);
    // Plain HTTP to the TLS port: no page.
    await expect(fetch(v.consoleUrl, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();

    await agent.stop('SIGTERM');
    agent = v.startAgent();
    await agent.waitFor((l) => l.includes('crew console listening'));
    expect((await getTls(https, pem)).fingerprint).toBe(first.fingerprint);
  });
});
