import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TenderError } from '../errors.js';

/**
 * Sealing to a shore key, as age does it with node:crypto alone: an ephemeral X25519 key agrees a secret
 * with the recipient's public key, HKDF-SHA256 turns it into an AES-256-GCM key, and the data travels in
 * 64 KiB records, each with its own tag and a counter nonce whose last byte marks the final record, so a
 * truncated, reordered or spliced file is refused. The vessel can seal; only the holder of the shore
 * private key can open. Backups on board stay unsealed, so a restore never needs the shore.
 */
export class SealError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_seal');
  }
}

/** What a sealed stream starts with (a file that does is refused where only an opened one will do). */
export const SEAL_MAGIC = Buffer.from('tender-seal/v1\n');
const RECORD = 64 * 1024;
const TAG = 16;
const INFO = Buffer.from('tender backup seal v1');

export interface SealKeyPair {
  privatePem: string;
  /** base64 of the 32 raw bytes, as a policy names it. */
  publicBase64: string;
  keyId: string;
}

export function sealKeyId(publicRaw: Buffer): string {
  return createHash('sha256').update(publicRaw).digest('hex').slice(0, 16);
}

function rawOf(pub: KeyObject): Buffer {
  return Buffer.from(pub.export({ format: 'jwk' }).x!, 'base64url');
}

function publicFromRaw(raw: Buffer): KeyObject {
  if (raw.byteLength !== 32) throw new SealError('an X25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

export function generateSealKey(): SealKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const raw = rawOf(publicKey);
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicBase64: raw.toString('base64'),
    keyId: sealKeyId(raw),
  };
}

function deriveKey(shared: Buffer, ephemeral: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), INFO, 32));
}

function nonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

function sealRecord(key: Buffer, counter: number, last: boolean, plain: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce(counter, last));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([body, c.getAuthTag()]);
}

/** A stream that seals what passes through it to `recipientBase64`. */
export function sealStream(recipientBase64: string): Transform {
  const recipient = Buffer.from(recipientBase64, 'base64');
  const eph = generateKeyPairSync('x25519');
  const ephRaw = rawOf(eph.publicKey);
  const key = deriveKey(
    diffieHellman({ privateKey: eph.privateKey, publicKey: publicFromRaw(recipient) }),
    ephRaw,
    recipient,
  );
  let pending: Buffer = Buffer.alloc(0);
  let counter = 0;
  let headerSent = false;
  const header = () => {
    if (headerSent) return [];
    headerSent = true;
    return [SEAL_MAGIC, ephRaw];
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const out: Buffer[] = header();
      pending = pending.byteLength ? Buffer.concat([pending, chunk]) : chunk;
      // Keep at least one byte back: the final record must be sealed as final, even when empty otherwise.
      while (pending.byteLength > RECORD) {
        out.push(sealRecord(key, counter++, false, pending.subarray(0, RECORD)));
        pending = pending.subarray(RECORD);
      }
      cb(null, Buffer.concat(out));
    },
    flush(cb: TransformCallback) {
      cb(null, Buffer.concat([...header(), sealRecord(key, counter, true, pending)]));
    },
  });
}

/** A stream that opens a sealed file with the shore's private key (PEM); refuses anything altered. */
export function openStream(privatePem: string): Transform {
  const priv = createPrivateKey(privatePem);
  const recipient = rawOf(createPublicKey(priv));
  let buf: Buffer = Buffer.alloc(0);
  let key: Buffer | undefined;
  let counter = 0;
  let ended = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      buf = buf.byteLength ? Buffer.concat([buf, chunk]) : chunk;
      try {
        const out: Buffer[] = [];
        if (!key) {
          if (buf.byteLength < SEAL_MAGIC.byteLength + 32) return cb();
          if (!buf.subarray(0, SEAL_MAGIC.byteLength).equals(SEAL_MAGIC)) throw new SealError('not a sealed backup');
          const eph = Buffer.from(buf.subarray(SEAL_MAGIC.byteLength, SEAL_MAGIC.byteLength + 32));
          key = deriveKey(diffieHellman({ privateKey: priv, publicKey: publicFromRaw(eph) }), eph, recipient);
          buf = buf.subarray(SEAL_MAGIC.byteLength + 32);
        }
        // A full record followed by more bytes cannot be the last one.
        while (buf.byteLength > RECORD + TAG) {
          out.push(openRecord(key, counter++, false, buf.subarray(0, RECORD + TAG)));
          buf = buf.subarray(RECORD + TAG);
        }
        cb(null, Buffer.concat(out));
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        if (!key) throw new SealError('sealed backup is truncated (no header)');
        if (ended) return cb();
        ended = true;
        cb(null, openRecord(key, counter, true, buf));
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

function openRecord(key: Buffer, counter: number, last: boolean, rec: Buffer): Buffer {
  if (rec.byteLength < TAG) throw new SealError('sealed backup is truncated');
  const d = createDecipheriv('aes-256-gcm', key, nonce(counter, last));
  d.setAuthTag(rec.subarray(rec.byteLength - TAG));
  try {
    return Buffer.concat([d.update(rec.subarray(0, rec.byteLength - TAG)), d.final()]);
  } catch {
    throw new SealError(`sealed backup record ${counter} does not open (altered, truncated, or sealed to another key)`);
  }
}

async function through(t: Transform, data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  t.on('data', (p: Buffer) => parts.push(p));
  const done = new Promise<void>((resolve, reject) => {
    t.on('end', resolve);
    t.on('error', reject);
  });
  t.end(data);
  await done;
  return Buffer.concat(parts);
}

/** A small buffer sealed to the shore key (a sealed backup's header). */
export function sealBytes(recipientBase64: string, data: Buffer): Promise<Buffer> {
  return through(sealStream(recipientBase64), data);
}

/** A small sealed buffer opened with the shore private key; refused when altered. */
export function openBytes(privatePem: string, sealed: Buffer): Promise<Buffer> {
  return through(openStream(privatePem), sealed);
}
