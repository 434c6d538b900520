import { readFileSync, statSync } from 'node:fs';
import { TenderError, UsageError } from '../shared/errors.js';
import {
  DEFAULT_ENVELOPE_MAX_BYTES,
  DOCUMENT_TYPES,
  documentTypeOf,
  readEnvelope,
  type DocumentType,
} from '../shared/trust/envelope.js';
import {
  assertRootFresh,
  verifyInitialRoot,
  verifyNextRoot,
  verifySignedDocument,
  type TrustedRoot,
} from '../shared/trust/root.js';
import { positional, requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { shortKeyId } from '../shared/trust/keys.js';

export class VerifyError extends TenderError {}

// Release manifests list every chunk of every layer; 64 MB covers a multi-gigabyte image set.
const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;

function readCapped(path: string, cap: number): Buffer {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new VerifyError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (size > cap) throw new VerifyError(`${path} is ${size} bytes, over the ${cap}-byte limit`);
  return readFileSync(path);
}

export interface VerifyResult {
  file: string;
  type: DocumentType;
  ok: true;
  summary: string;
  signers: string[];
}

/** Verify any signed document against a trusted root file; throws with one line saying why not. */
export function verifyDocumentFile(
  file: string,
  rootFile: string,
  expected?: DocumentType,
  now = new Date(),
): VerifyResult {
  const root = verifyInitialRoot(readCapped(rootFile, DEFAULT_ENVELOPE_MAX_BYTES));
  const bytes = readCapped(file, MAX_DOCUMENT_BYTES);
  const env = readEnvelope(bytes, MAX_DOCUMENT_BYTES);
  const type = documentTypeOf(env.payloadType);
  if (!type) throw new VerifyError(`unknown document type ${JSON.stringify(env.payloadType)}`);
  if (expected && type !== expected) throw new VerifyError(`expected a ${expected} document, got a ${type} document`);
  if (type === 'root') return verifyRootFile(file, root, bytes, now);
  assertRootFresh(root, now);
  const doc = verifySignedDocument(root, env, type);
  const label = [
    doc.payload.name,
    doc.payload.version,
    doc.payload.sequence !== undefined ? `#${doc.payload.sequence}` : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(' ');
  return {
    file,
    type,
    ok: true,
    signers: doc.signers,
    summary:
      `${type}${label ? ` ${label}` : ''} signed by ${doc.signers.length} of ` +
      `${root.role('release').threshold} required release keys ` +
      `(${doc.signers.map(shortKeyId).join(', ')})`,
  };
}

function verifyRootFile(file: string, trusted: TrustedRoot, bytes: Buffer, now: Date): VerifyResult {
  let next: TrustedRoot;
  const offered = readEnvelope(bytes);
  if (Buffer.from(offered.payload, 'base64').equals(Buffer.from(trusted.envelope.payload, 'base64'))) {
    next = trusted;
  } else {
    next = verifyNextRoot(trusted, bytes);
  }
  assertRootFresh(next, now);
  return {
    file,
    type: 'root',
    ok: true,
    signers: [],
    summary:
      next === trusted
        ? `root v${next.version} is the trusted root`
        : `root v${next.version} is a valid rotation of v${trusted.version}`,
  };
}

export const releaseVerify: Command = {
  path: ['release', 'verify'],
  args: 'FILE',
  summary: 'verify a signed document (release, policy, rollback directive, root) against a trusted root',
  options: {
    root: { type: 'string', description: 'the trusted root document (root.json)' },
    type: { type: 'string', description: `demand this document type (${DOCUMENT_TYPES.join(', ')})` },
  },
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    const rootFile = requiredOpt(ctx, 'root');
    const type = stringOpt(ctx, 'type');
    if (type !== undefined && !(DOCUMENT_TYPES as readonly string[]).includes(type))
      throw new UsageError(`--type must be one of ${DOCUMENT_TYPES.join(', ')}`);
    return verifyDocumentFile(file, rootFile, type as DocumentType | undefined);
  },
  human: (r: VerifyResult) => `OK: ${r.summary}`,
};
