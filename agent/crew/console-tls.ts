import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { fingerprintOf, showFingerprint } from '../../shared/tls/certs.js';
import { selfSignedCert } from '../../shared/tls/self-signed.js';

/** Where the console's certificate and key live (the key readable by the agent's user only). */
export const consoleTlsPaths = (dataDir: string) => ({
  cert: `${dataDir}/console-tls.pem`,
  key: `${dataDir}/console-tls.key`,
});

// A certificate this close to its end is made again at the next start (it is the crew's to trust anew).
const RENEW_BEFORE_MS = 30 * 86_400_000;

/** The names the console answers on: the listen address, or every address of this server when it is all. */
function namesFor(host: string): string[] {
  if (host !== '0.0.0.0' && host !== '::' && host !== '') return [...new Set([host, 'localhost'])];
  const addrs = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal)
    .map((a) => a!.address.split('%')[0]!);
  return [...new Set([hostname(), 'localhost', '127.0.0.1', ...addrs])];
}

/** The console's certificate and key: kept on disk, made when missing or near its end. */
export function consoleCertificate(dataDir: string, host: string, now = Date.now()): { cert: string; key: string } {
  const p = consoleTlsPaths(dataDir);
  if (existsSync(p.cert) && existsSync(p.key)) {
    const cert = readFileSync(p.cert, 'utf8');
    if (Date.parse(new X509Certificate(cert).validTo) - now > RENEW_BEFORE_MS)
      return { cert, key: readFileSync(p.key, 'utf8') };
  }
  const made = selfSignedCert(namesFor(host), { cn: `tender console ${hostname()}` });
  writeFileAtomic(p.key, made.keyPem, 0o600);
  writeFileAtomic(p.cert, made.certPem, 0o644);
  return { cert: made.certPem, key: made.keyPem };
}

/** "AB:CD:..." of the console's certificate, as `tender status` and the start log show it; null if none yet. */
export function consoleFingerprint(dataDir: string): string | null {
  const p = consoleTlsPaths(dataDir).cert;
  if (!existsSync(p)) return null;
  return showFingerprint(fingerprintOf(new X509Certificate(readFileSync(p, 'utf8'))));
}
