import { z } from 'zod';
import type { X509Certificate } from 'node:crypto';
import { TenderError } from '../errors.js';
import { describeZodError } from '../validation.js';
import { readEnvelope } from '../trust/envelope.js';
import { verifySignedDocument, type TrustedRoot } from '../trust/root.js';
import { fingerprintOf, isSelfSigned, parseCertificates, showFingerprint } from '../tls/certs.js';

/**
 * The hub's TLS trust, announced: a document signed by a release key (like a release or a policy) that
 * lists the CAs a vessel pins for its hub. Enrolment pins one CA; a CA rotation is announced here first
 * (old and new CA together), reaches every vessel in its desired state while the old CA still serves, and
 * only then does the hub switch: a ship at sea during the switch already trusts the new CA, and a hub that
 * can read the link cannot forge it (it holds no release key).
 */
export class HubTlsError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_hub_tls');
  }
}

export const HUB_TLS_SPEC = 1;
// A few CA certificates in PEM: a few KB. The cap is what the envelope reader refuses past.
export const MAX_HUB_TLS_BYTES = 32 * 1024;
// Old and new during a rotation, and room for a second site's CA; more is a mistake.
const MAX_CAS = 4;

export const hubTlsDocumentSchema = z.strictObject({
  _type: z.literal('hub-tls'),
  spec: z.literal(HUB_TLS_SPEC),
  /** Only a higher one replaces what a vessel holds; default at signing: the UNIX time in seconds. */
  sequence: z
    .number()
    .int()
    .min(1)
    .max(2 ** 40),
  createdAt: z.iso.datetime(),
  /** The CA certificates (self-signed, PEM) a vessel pins for its hub, replacing what it pinned. */
  cas: z.array(z.string().max(8192)).min(1).max(MAX_CAS),
});
export type HubTlsDocument = z.infer<typeof hubTlsDocumentSchema>;

/** A checked announcement: its CAs parsed, each self-signed, none twice. */
export interface HubTlsAnnouncement {
  doc: HubTlsDocument;
  cas: X509Certificate[];
  /** Lowercase hex sha256 pins, in document order. */
  pins: string[];
}

export function checkHubTlsDocument(payload: unknown, what: string): HubTlsAnnouncement {
  const parsed = hubTlsDocumentSchema.safeParse(payload);
  if (!parsed.success) throw new HubTlsError(describeZodError(parsed.error, what));
  const doc = parsed.data;
  const cas = doc.cas.map((pem, i) => {
    const certs = parseCertificates(pem, `${what}: cas[${i}]`);
    if (certs.length !== 1) throw new HubTlsError(`${what}: cas[${i}] holds ${certs.length} certificates, not one`);
    if (!isSelfSigned(certs[0]!)) throw new HubTlsError(`${what}: cas[${i}] is not a self-signed CA certificate`);
    return certs[0]!;
  });
  const pins = cas.map(fingerprintOf);
  if (new Set(pins).size !== pins.length) throw new HubTlsError(`${what}: a CA is listed twice`);
  return { doc, cas, pins };
}

/** Verify a signed announcement against the trusted root (a release key's signature, the type bound in). */
export function verifyHubTlsEnvelope(root: TrustedRoot, bytes: Uint8Array): HubTlsAnnouncement {
  const env = readEnvelope(bytes, MAX_HUB_TLS_BYTES);
  const doc = verifySignedDocument(root, env, 'hub-tls');
  return checkHubTlsDocument(doc.payload, 'signed hub-tls announcement');
}

export const showPins = (pins: readonly string[]) => pins.map(showFingerprint).join(', ');

// ---- on the hub API

const pinList = z.array(z.string().regex(/^[0-9a-f]{64}$/)).describe('sha256 pins (hex) of the announced CAs');
export const hubTlsPublishedSchema = z.strictObject({
  sequence: z.number().int(),
  pins: pinList,
  created: z.boolean().describe('false when this exact announcement was already published'),
});
export const hubTlsViewSchema = z.strictObject({
  announced: z
    .strictObject({
      sequence: z.number().int(),
      pins: pinList,
      publishedAt: z.iso.datetime(),
      publishedBy: z.string(),
    })
    .nullable()
    .describe('the announcement in force; null: none (vessels keep the CA pinned at enrolment)'),
  serving: z
    .string()
    .nullable()
    .describe('pin of the CA this hub process serves under; null: plain http or no pinnable CA'),
});
