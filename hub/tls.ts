import { randomBytes, type X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import {
  CertificateError,
  anchorOf,
  fingerprintOf,
  readCertificates,
  readPrivateKey,
  toPem,
} from '../shared/tls/certs.js';

/** Where the hub's certificate and key come from; read again on SIGHUP. */
export interface HubTlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA vessels pin, when the chain in certFile stops below it (a chain from your own CA's intermediate). */
  caFile?: string;
}

/** What the hub serves and what it tells vessels to pin, as loaded from the files. */
export interface HubTlsState {
  context: SecureContextOptions;
  /** The certificate vessels pin (hex sha256 of DER) and its PEM, or undefined: vessels use their system store. */
  anchor?: { pin: string; pem: string; notAfter: string };
  leaf: { subject: string; notAfter: string; keyType: string; fingerprint: string };
}

// TLS 1.3 only: one round trip for a full handshake, none of the older versions' downgrade paths.
export const TLS_MIN_VERSION = 'TLSv1.3';
// A session ticket lives this long (TLS 1.3's ceiling, RFC 8446 4.6.1): a vessel polling every 15 minutes,
// its link dropping in between, resumes for a week before it pays for a full handshake again.
export const TLS_SESSION_TIMEOUT_S = 7 * 24 * 3600;
// The ticket key is kept on disk so a hub restart does not turn every vessel's next poll into a full
// handshake; it is replaced after this long (one full handshake per vessel per week).
export const TICKET_KEY_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
// node:tls takes 48 bytes: key name, HMAC secret, AES key.
const TICKET_KEY_BYTES = 48;

/** Read and check the certificate files: the key fits the leaf, the anchor (if any) signs the chain. */
export function loadHubTls(files: HubTlsFiles): HubTlsState {
  const chain = readCertificates(files.certFile, '--tls-cert');
  const key = readPrivateKey(files.keyFile, '--tls-key');
  const leaf = chain[0]!;
  if (!leaf.checkPrivateKey(key))
    throw new CertificateError(
      `--tls-key ${files.keyFile} is not the key of the first certificate in ${files.certFile}`,
    );
  let served = chain;
  let anchor: X509Certificate | undefined = anchorOf(chain);
  if (files.caFile) {
    const ca = readCertificates(files.caFile, '--tls-ca');
    anchor = ca.find((c) => anchorOf([c]) && chain.some((x) => x.checkIssued(c) && x.verify(c.publicKey)));
    if (!anchor)
      throw new CertificateError(
        `--tls-ca ${files.caFile} holds no self-signed CA that issued a certificate in ${files.certFile}`,
      );
    // Served too, so a vessel enrolling with only the pin finds the certificate it names in the handshake.
    if (!chain.some((c) => fingerprintOf(c) === fingerprintOf(anchor!))) served = [...chain, anchor];
  }
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now)
    throw new CertificateError(`--tls-cert ${files.certFile} expired on ${leaf.validTo}`);
  const keyType = key.asymmetricKeyType ?? 'unknown';
  return {
    context: {
      key: key.export({ format: 'pem', type: 'pkcs8' }),
      cert: served.map(toPem).join(''),
      minVersion: TLS_MIN_VERSION,
    },
    anchor: anchor
      ? { pin: fingerprintOf(anchor), pem: toPem(anchor), notAfter: new Date(anchor.validTo).toISOString() }
      : undefined,
    leaf: {
      subject: leaf.subject.replace(/\n/g, ', '),
      notAfter: new Date(leaf.validTo).toISOString(),
      keyType,
      fingerprint: fingerprintOf(leaf),
    },
  };
}

/**
 * The session ticket key, kept 0600 under the data dir (written to a temp file, fsynced, renamed), made anew
 * when missing or older than TICKET_KEY_MAX_AGE_MS.
 */
export function loadTicketKeys(dataDir: string, now = Date.now()): Buffer {
  const path = join(dataDir, 'tls-ticket.key');
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8').trim();
    const [made, hex] = text.split(' ');
    const key = Buffer.from(hex ?? '', 'hex');
    if (key.byteLength === TICKET_KEY_BYTES && now - Number(made) < TICKET_KEY_MAX_AGE_MS) return key;
  }
  const key = randomBytes(TICKET_KEY_BYTES);
  writeFileAtomic(path, `${now} ${key.toString('hex')}\n`, 0o600);
  return key;
}
