import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TenderError } from '../errors.js';

export class KeyError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_key');
  }
}

/** An Ed25519 public key is 32 bytes; its id is the hex sha256 of those bytes, so one key has one id. */
export const ED25519_PUBLIC_KEY_BYTES = 32;

export interface PublicKey {
  keyid: string;
  raw: Buffer;
  key: KeyObject;
}

export interface PrivateKey {
  keyid: string;
  key: KeyObject;
  publicRaw: Buffer;
}

export function keyIdOf(publicRaw: Uint8Array): string {
  return createHash('sha256').update(publicRaw).digest('hex');
}

export function publicKeyFromRaw(raw: Buffer): PublicKey {
  if (raw.byteLength !== ED25519_PUBLIC_KEY_BYTES) {
    throw new KeyError(`an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${raw.byteLength}`);
  }
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  return { keyid: keyIdOf(raw), raw, key };
}

// An Ed25519 SubjectPublicKeyInfo is this fixed 12-byte header and the 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function rawOfSpki(der: Buffer): Buffer {
  if (
    der.byteLength !== ED25519_SPKI_PREFIX.byteLength + ED25519_PUBLIC_KEY_BYTES ||
    !der.subarray(0, 12).equals(ED25519_SPKI_PREFIX)
  )
    throw new KeyError('not an Ed25519 key');
  return Buffer.from(der.subarray(12));
}

export function publicKeyFromBase64(b64: string): PublicKey {
  return publicKeyFromRaw(Buffer.from(b64, 'base64'));
}

function rawOfPublic(key: KeyObject): Buffer {
  return rawOfSpki(key.export({ type: 'spki', format: 'der' }));
}

/**
 * A new Ed25519 key. The pair comes out of the key generation already encoded and the private KeyObject
 * is made from its PEM: exporting from the generated KeyObjects (a JWK export in particular) was seen to
 * deadlock Node 20 when a garbage collection inside the export freed the generation job, which takes the
 * same key lock (a bench making 10,000 keys hung in set-up).
 */
export function generateKey(): { privatePem: string; key: PrivateKey } {
  const { privateKey: privatePem, publicKey: spki } = generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const publicRaw = rawOfSpki(spki);
  return { privatePem, key: { keyid: keyIdOf(publicRaw), key: createPrivateKey(privatePem), publicRaw } };
}

export function privateKeyFromPem(pem: string, source: string): PrivateKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new KeyError(`${source}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new KeyError(`${source}: not an Ed25519 key (${key.asymmetricKeyType})`);
  const publicRaw = rawOfPublic(createPublicKey(key));
  return { keyid: keyIdOf(publicRaw), key, publicRaw };
}

export function loadPrivateKey(path: string): PrivateKey {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KeyError(
      `cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return privateKeyFromPem(pem, path);
}

export function signBytes(key: PrivateKey, data: Uint8Array): Buffer {
  return sign(null, data, key.key);
}

export function verifyBytes(key: PublicKey, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, key.key, signature);
  } catch {
    return false;
  }
}

/** A short form for humans; the full id is what documents carry. */
export function shortKeyId(keyid: string): string {
  return keyid.slice(0, 16);
}
