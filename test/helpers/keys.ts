import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { RootPayload } from '../../shared/trust/root.js';

export interface TestKeys {
  root: PrivateKey[];
  release: PrivateKey[];
}

export function makeKeys(nRoot = 3, nRelease = 1): TestKeys {
  return {
    root: Array.from({ length: nRoot }, () => generateKey().key),
    release: Array.from({ length: nRelease }, () => generateKey().key),
  };
}

export function rootPayloadFor(
  version: number,
  keys: TestKeys,
  opts: { rootThreshold?: number; releaseThreshold?: number; expires?: string } = {},
): RootPayload {
  const entries: RootPayload['keys'] = {};
  for (const k of [...keys.root, ...keys.release])
    entries[k.keyid] = { type: 'ed25519', public: k.publicRaw.toString('base64') };
  return {
    _type: 'root',
    spec: 1,
    version,
    expires: opts.expires ?? new Date(Date.now() + 365 * 86400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    keys: entries,
    roles: {
      root: { keyids: keys.root.map((k) => k.keyid), threshold: opts.rootThreshold ?? Math.min(2, keys.root.length) },
      release: { keyids: keys.release.map((k) => k.keyid), threshold: opts.releaseThreshold ?? 1 },
    },
  };
}

/** A signed root document's bytes. */
export function signedRoot(payload: unknown, signers: PrivateKey[]): Buffer {
  return envelopeBytes(signEnvelope('root', payload, signers));
}
