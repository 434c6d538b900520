import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TenderError } from '../errors.js';

export class CertificateError extends TenderError {}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
// A PEM bundle of pinned CAs or a served chain is a few KB; a file far bigger is not one.
const MAX_PEM_BYTES = 256 * 1024;

/** The certificates of a PEM text, in file order (a served chain: leaf first). */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT_RE) ?? [];
  if (blocks.length === 0) throw new CertificateError(`${what}: no PEM certificate in it`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new CertificateError(`${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

export function readPemFile(path: string, what: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new CertificateError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (buf.byteLength > MAX_PEM_BYTES) throw new CertificateError(`${what} ${path} is over ${MAX_PEM_BYTES} bytes`);
  return buf.toString('utf8');
}

export function readCertificates(path: string, what: string): X509Certificate[] {
  return parseCertificates(readPemFile(path, what), `${what} ${path}`);
}

export function readPrivateKey(path: string, what: string): KeyObject {
  const pem = readPemFile(path, what);
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new CertificateError(`${what} ${path} is not a PEM private key: ${(err as Error).message}`);
  }
}

/** The pin of a certificate: lowercase hex sha256 of its DER bytes (what `openssl x509 -fingerprint -sha256` shows). */
export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, '').toLowerCase();
}

/** A pin as people compare it by eye: SHA256:AB:CD:... */
export function showFingerprint(pin: string): string {
  return `SHA256:${pin.toUpperCase().replace(/(..)(?!$)/g, '$1:')}`;
}

/** Pins travel in enrolment tokens as base64url of the 32 digest bytes (43 characters). */
export function pinToToken(pin: string): string {
  return Buffer.from(pin, 'hex').toString('base64url');
}

export function pinFromToken(text: string): string {
  return Buffer.from(text, 'base64url').toString('hex');
}

/** A certificate that signed itself: the only kind a vessel can pin as its trust anchor. */
export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey);
}

export function toPem(cert: X509Certificate): string {
  return cert.toString().trim() + '\n';
}

/** The pinnable anchor of a served chain: its last certificate when that one is self-signed. */
export function anchorOf(chain: X509Certificate[]): X509Certificate | undefined {
  const last = chain[chain.length - 1];
  return last && isSelfSigned(last) ? last : undefined;
}
