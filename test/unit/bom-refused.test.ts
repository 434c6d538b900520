import { describe, expect, it } from 'vitest';
import { pae, readEnvelope, type Envelope } from '../../shared/trust/envelope.js';
import { signBytes } from '../../shared/trust/keys.js';
import { payloadTypeOf } from '../../shared/trust/envelope.js';
import { verifyInitialRoot, verifySignedDocument } from '../../shared/trust/root.js';
import { parseStrictJson } from '../../shared/trust/strict-json.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** An envelope whose signature covers exactly these payload bytes (a BOM included, if given). */
function signRaw(
  type: 'release' | 'policy' | 'rollback',
  payload: Buffer,
  key: ReturnType<typeof makeKeys>['release'][0],
) {
  const payloadType = payloadTypeOf(type);
  const env: Envelope = {
    payloadType,
    payload: payload.toString('base64'),
    signatures: [{ keyid: key.keyid, sig: signBytes(key, pae(payloadType, payload)).toString('base64') }],
  };
  return env;
}

describe('a byte-order mark is refused, never stripped (a verifier and a consumer must see the same bytes)', () => {
  const keys = makeKeys(1, 1);
  const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys, { rootThreshold: 1 }), keys.root));

  it.each(['release', 'policy', 'rollback'] as const)('refuses a signed %s payload that starts with a BOM', (type) => {
    const body = Buffer.from(JSON.stringify({ _type: type, n: 1 }));
    // The same payload without the BOM verifies: the refusal is about the BOM alone.
    expect(verifySignedDocument(root, signRaw(type, body, keys.release[0]!), type).payload.n).toBe(1);
    const env = signRaw(type, Buffer.concat([BOM, body]), keys.release[0]!);
    expect(() => verifySignedDocument(root, env, type)).toThrow(/byte order mark/);
  });

  it('refuses an envelope, a root and any strict document that start with a BOM, as bytes or as text', () => {
    const root1 = signedRoot(rootPayloadFor(1, keys, { rootThreshold: 1 }), keys.root);
    expect(() => verifyInitialRoot(Buffer.concat([BOM, root1]))).toThrow(/byte order mark/);
    const env = Buffer.from(JSON.stringify(signRaw('release', Buffer.from('{}'), keys.release[0]!)));
    expect(() => readEnvelope(Buffer.concat([BOM, env]))).toThrow(/byte order mark/);
    expect(() => parseStrictJson(Buffer.concat([BOM, Buffer.from('{"a":1}')]))).toThrow(/byte order mark/);
    expect(() => parseStrictJson('\ufeff{"a":1}')).toThrow(/byte order mark/);
    // Anywhere after the start it is an unexpected character, as before.
    expect(() => parseStrictJson(' \ufeff{"a":1}')).toThrow();
  });
});
