import { createServer } from 'node:https';
import { connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { selfSignedCert } from '../../shared/tls/self-signed.js';

/** Connect to 127.0.0.1:port trusting only `ca`; the peer's fingerprint, or the error code. */
function handshake(port: number, ca: string, servername?: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca, ...(servername && { servername }) }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
  });
}

describe('self-signed certificates made in-process (the crew console)', () => {
  it('makes an ECDSA P-256 server certificate a TLS client accepts when it pins it', async () => {
    const s = selfSignedCert(['127.0.0.1', 'ship.local', '::1'], { cn: 'tender console test' });
    expect(s.cert.subject).toBe('CN=tender console test');
    expect(s.cert.subjectAltName).toBe('IP Address:127.0.0.1, DNS:ship.local, IP Address:0:0:0:0:0:0:0:1');
    expect(s.cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(s.cert.verify(s.cert.publicKey)).toBe(true);
    expect(s.cert.ca).toBe(false);
    expect(s.cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    const server = createServer({ cert: s.certPem, key: s.keyPem }, (_q, r) => r.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      expect(await handshake(port, s.certPem)).toBe(s.cert.fingerprint256);
      // A name it was not made for, and a certificate the client does not pin: refused.
      expect(await handshake(port, s.certPem, 'other.local')).toBe('error ERR_TLS_CERT_ALTNAME_INVALID');
      const other = selfSignedCert(['127.0.0.1']);
      expect(await handshake(port, other.certPem)).toMatch(
        /^error (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/,
      );
    } finally {
      server.close();
    }
  });

  it('writes its validity right on both sides of 2050, and makes a new key and serial each time', () => {
    const s = selfSignedCert(['127.0.0.1'], { days: 30 * 365 });
    expect(new Date(s.cert.validTo).getUTCFullYear()).toBeGreaterThanOrEqual(2050);
    expect(Date.parse(s.cert.validFrom)).toBeLessThan(Date.now());
    const t = selfSignedCert(['127.0.0.1']);
    expect(t.cert.serialNumber).not.toBe(s.cert.serialNumber);
    expect(t.cert.fingerprint256).not.toBe(s.cert.fingerprint256);
    expect(() => selfSignedCert([])).toThrow(/at least one name/);
  });
});
