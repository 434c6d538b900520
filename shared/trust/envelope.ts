import { z } from 'zod';
import { TenderError } from '../errors.js';
import { canonicalBytes } from './canonical-json.js';
import { parseStrictJson, StrictJsonError } from './strict-json.js';
import { signBytes, verifyBytes, type PrivateKey, type PublicKey } from './keys.js';
import { describeZodError } from '../validation.js';

/**
 * Signed documents travel in a DSSE envelope: the signature covers the exact payload bytes and their type
 * (pre-authentication encoding), and we verify before we parse the payload. A signed root cannot be
 * passed off as a release because the type is part of what is signed.
 */
export class SignatureError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_signature');
  }
}

export const DOCUMENT_TYPES = ['root', 'release', 'policy', 'rollback', 'hub-tls'] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

export function payloadTypeOf(type: DocumentType): string {
  return `application/vnd.tender.${type}+json`;
}

export function documentTypeOf(payloadType: string): DocumentType | undefined {
  return DOCUMENT_TYPES.find((t) => payloadTypeOf(t) === payloadType);
}

// Signed control documents are small; a release manifest sets a larger cap of its own.
export const DEFAULT_ENVELOPE_MAX_BYTES = 1024 * 1024;
// More signatures than any sane threshold needs; bounds the work an attacker can make us do.
const MAX_SIGNATURES = 16;

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');

export const envelopeSchema = z.strictObject({
  payloadType: z.string().max(128),
  payload: base64,
  signatures: z
    .array(z.strictObject({ keyid: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'), sig: base64.max(128) }))
    .max(MAX_SIGNATURES),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/** DSSE pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.byteLength} `),
    type,
    Buffer.from(` ${payload.byteLength} `),
    payload,
  ]);
}

export function signEnvelope(type: DocumentType, payload: unknown, keys: PrivateKey[]): Envelope {
  const bytes = canonicalBytes(payload);
  const payloadType = payloadTypeOf(type);
  const message = pae(payloadType, bytes);
  const seen = new Set<string>();
  const signatures = [];
  for (const k of keys) {
    if (seen.has(k.keyid)) continue;
    seen.add(k.keyid);
    signatures.push({ keyid: k.keyid, sig: signBytes(k, message).toString('base64') });
  }
  return { payloadType, payload: bytes.toString('base64'), signatures };
}

export function envelopeBytes(env: Envelope): Buffer {
  return Buffer.from(`${JSON.stringify(env, null, 2)}\n`);
}

/** Parse an envelope from untrusted bytes: size cap, strict JSON, exact shape. */
export function readEnvelope(bytes: Uint8Array, maxBytes = DEFAULT_ENVELOPE_MAX_BYTES): Envelope {
  let json;
  try {
    json = parseStrictJson(bytes, { maxBytes, maxDepth: 8, allowFloats: false });
  } catch (err) {
    if (err instanceof StrictJsonError) throw new SignatureError(`not a signed document: ${err.message}`);
    throw err;
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) throw new SignatureError(`not a signed document: ${describeZodError(parsed.error, 'envelope')}`);
  return parsed.data;
}

export interface ThresholdCheck {
  /** The keys allowed to sign for this role, by id. */
  keys: Map<string, PublicKey>;
  threshold: number;
  /** Who is signing, for the error message: "root v3", "release". */
  role: string;
}

/**
 * Count distinct valid signatures by keys of the role. A key counts once however many signatures it has;
 * a signature by a key outside the role counts for nothing.
 */
export function countValidSignatures(env: Envelope, check: ThresholdCheck): string[] {
  const message = pae(env.payloadType, Buffer.from(env.payload, 'base64'));
  const valid = new Set<string>();
  for (const s of env.signatures) {
    if (valid.has(s.keyid)) continue;
    const key = check.keys.get(s.keyid);
    if (!key) continue;
    if (verifyBytes(key, message, Buffer.from(s.sig, 'base64'))) valid.add(s.keyid);
  }
  return [...valid];
}

export function requireThreshold(env: Envelope, check: ThresholdCheck): string[] {
  const valid = countValidSignatures(env, check);
  if (valid.length < check.threshold) {
    const tampered = env.signatures.some((s) => check.keys.has(s.keyid)) && valid.length === 0;
    const why = tampered
      ? 'signatures do not match the document (tampered?)'
      : 'signed by unknown or unauthorised keys';
    throw new SignatureError(
      `${check.role} threshold not met: ${valid.length} of ${check.threshold} required valid signatures` +
        (valid.length === 0 ? ` (${why})` : ''),
    );
  }
  return valid;
}

/** Check the declared type, then hand back the payload bytes; only verified payloads get parsed. */
export function expectType(env: Envelope, type: DocumentType): void {
  if (env.payloadType !== payloadTypeOf(type)) {
    const got = documentTypeOf(env.payloadType);
    throw new SignatureError(
      `expected a ${type} document, got ${got ? `a ${got} document` : JSON.stringify(env.payloadType)}`,
    );
  }
}

export function parsePayload(env: Envelope, maxBytes = DEFAULT_ENVELOPE_MAX_BYTES): unknown {
  const bytes = Buffer.from(env.payload, 'base64');
  try {
    return parseStrictJson(bytes, { maxBytes, maxDepth: 32, allowFloats: false, asciiKeysOnly: true });
  } catch (err) {
    if (err instanceof StrictJsonError) throw new SignatureError(`signed payload refused: ${err.message}`);
    throw err;
  }
}
