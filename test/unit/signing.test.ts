import { describe, expect, it } from 'vitest';
import { envelopeBytes, pae, readEnvelope, signEnvelope, type Envelope } from '../../shared/trust/envelope.js';
import { generateKey, signBytes } from '../../shared/trust/keys.js';
import {
  assertRootFresh,
  MAX_ROOT_ROTATIONS_PER_UPDATE,
  verifyInitialRoot,
  verifyNextRoot,
  verifySignedDocument,
  walkRootChain,
} from '../../shared/trust/root.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';

const release = (sequence = 1) => ({ _type: 'release', name: 'sms', version: '1.0.0', sequence });

function setup() {
  const keys = makeKeys(3, 2);
  const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys), keys.root));
  return { keys, root };
}

function tamper(env: Envelope, edit: (payload: Record<string, unknown>) => void): Envelope {
  const payload = JSON.parse(Buffer.from(env.payload, 'base64').toString()) as Record<string, unknown>;
  edit(payload);
  return { ...env, payload: Buffer.from(JSON.stringify(payload)).toString('base64') };
}

describe('signed documents', () => {
  it('verifies a release signed by a release key', () => {
    const { keys, root } = setup();
    const doc = verifySignedDocument(root, signEnvelope('release', release(), [keys.release[0]!]), 'release');
    expect(doc.payload.sequence).toBe(1);
    expect(doc.signers).toEqual([keys.release[0]!.keyid]);
  });

  it('refuses a document whose body was edited after signing', () => {
    const { keys, root } = setup();
    const env = tamper(signEnvelope('release', release(), [keys.release[0]!]), (p) => (p.sequence = 99));
    expect(() => verifySignedDocument(root, env, 'release')).toThrow(/release threshold not met: 0 of 1.*tampered/);
  });

  it('refuses a document signed by an unknown key', () => {
    const { root } = setup();
    const stranger = generateKey().key;
    expect(() => verifySignedDocument(root, signEnvelope('release', release(), [stranger]), 'release')).toThrow(
      /unknown or unauthorised keys/,
    );
  });

  it('refuses a release signed by a root key (wrong role)', () => {
    const { keys, root } = setup();
    expect(() => verifySignedDocument(root, signEnvelope('release', release(), keys.root), 'release')).toThrow(
      /release threshold not met/,
    );
  });

  it('counts one key once however many signatures it adds', () => {
    const keys = makeKeys(3, 2);
    const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys, { releaseThreshold: 2 }), keys.root));
    const env = signEnvelope('release', release(), [keys.release[0]!]);
    const doubled: Envelope = {
      ...env,
      signatures: [env.signatures[0]!, env.signatures[0]!, { ...env.signatures[0]! }],
    };
    expect(() => verifySignedDocument(root, doubled, 'release')).toThrow(/1 of 2 required/);
    expect(
      verifySignedDocument(root, signEnvelope('release', release(), keys.release), 'release').signers,
    ).toHaveLength(2);
  });

  it('refuses a document of the wrong type (a root where a release is expected)', () => {
    const { keys, root } = setup();
    const rootEnv = readEnvelope(signedRoot(rootPayloadFor(1, keys), keys.root));
    expect(() => verifySignedDocument(root, rootEnv, 'release')).toThrow(
      /expected a release document, got a root document/,
    );
    // The payload's own _type must agree with the signed type too.
    const lying = signEnvelope('release', { ...release(), _type: 'policy' }, [keys.release[0]!]);
    expect(() => verifySignedDocument(root, lying, 'release')).toThrow(/_type "policy"/);
  });

  it('refuses a signed payload with duplicate keys', () => {
    const { keys, root } = setup();
    const env = signEnvelope('release', release(), [keys.release[0]!]);
    // Sign the exact bytes of a payload with a duplicate key: the signature is genuine, the JSON is not.
    const bytes = Buffer.from('{"_type":"release","sequence":9,"sequence":1}');
    const sig = signBytes(keys.release[0]!, pae(env.payloadType, bytes)).toString('base64');
    const dup: Envelope = {
      payloadType: env.payloadType,
      payload: bytes.toString('base64'),
      signatures: [{ keyid: keys.release[0]!.keyid, sig }],
    };
    expect(() => verifySignedDocument(root, dup, 'release')).toThrow(/duplicate key "sequence"/);
  });

  it('refuses a genuinely signed payload, root or envelope that starts with a byte order mark', () => {
    const { keys, root } = setup();
    const signBom = (type: 'release' | 'root', doc: unknown, signers: typeof keys.release): Envelope => {
      // The signature covers the BOM too: only the parser can tell a verifier and a consumer apart here.
      const payloadType = `application/vnd.tender.${type}+json`;
      const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(doc))]);
      const signatures = signers.map((k) => ({
        keyid: k.keyid,
        sig: signBytes(k, pae(payloadType, bytes)).toString('base64'),
      }));
      return { payloadType, payload: bytes.toString('base64'), signatures };
    };
    expect(() => verifySignedDocument(root, signBom('release', release(), [keys.release[0]!]), 'release')).toThrow(
      /byte order mark/,
    );
    const nextRoot = signBom('root', rootPayloadFor(2, keys), keys.root);
    expect(() => verifyNextRoot(root, Buffer.from(JSON.stringify(nextRoot)))).toThrow(/byte order mark/);
    const env = envelopeBytes(signEnvelope('release', release(), [keys.release[0]!]));
    expect(() => readEnvelope(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), env]))).toThrow(/byte order mark/);
    expect(readEnvelope(env).payloadType).toBe('application/vnd.tender.release+json');
  });

  it('refuses an oversized or malformed envelope before any signature work', () => {
    const big = Buffer.from(JSON.stringify({ payloadType: 'x', payload: 'A'.repeat(2 * 1024 * 1024), signatures: [] }));
    expect(() => readEnvelope(big)).toThrow(/over the 1048576-byte limit/);
    expect(() => readEnvelope(Buffer.from('{"payloadType":"x","payload":"","signatures":[],"extra":1}'))).toThrow(
      /not a signed document/,
    );
  });
});

describe('root documents', () => {
  it('refuses a root signed by fewer than its threshold of root keys, or the same key twice', () => {
    const keys = makeKeys(3, 1);
    const payload = rootPayloadFor(1, keys);
    expect(() => verifyInitialRoot(signedRoot(payload, [keys.root[0]!]))).toThrow(/root v1 threshold not met: 1 of 2/);
    expect(() => verifyInitialRoot(signedRoot(payload, [keys.root[0]!, keys.root[0]!]))).toThrow(/1 of 2/);
  });

  it('refuses a key listed under an id that is not its digest (so it cannot count twice)', () => {
    const keys = makeKeys(2, 1);
    const payload = rootPayloadFor(1, keys);
    const fakeId = 'ab'.repeat(32);
    payload.keys[fakeId] = payload.keys[keys.root[0]!.keyid]!;
    payload.roles.root.keyids.push(fakeId);
    expect(() => verifyInitialRoot(signedRoot(payload, keys.root))).toThrow(/does not match its public key/);
  });

  it('refuses a key in both root and release roles, and thresholds above the key count', () => {
    const keys = makeKeys(2, 1);
    const p1 = rootPayloadFor(1, keys);
    p1.roles.release.keyids.push(keys.root[0]!.keyid);
    expect(() => verifyInitialRoot(signedRoot(p1, keys.root))).toThrow(/both the root and release roles/);
    const p2 = rootPayloadFor(1, keys, { rootThreshold: 3 });
    expect(() => verifyInitialRoot(signedRoot(p2, keys.root))).toThrow(/threshold 3 exceeds its 2 distinct keys/);
  });

  it('rotates when the next root carries a threshold of old and new root keys', () => {
    const { keys, root } = setup();
    const next = { ...keys, root: [keys.root[0]!, keys.root[1]!, generateKey().key] };
    const v2 = verifyNextRoot(root, signedRoot(rootPayloadFor(2, next), [...keys.root, next.root[2]!]));
    expect(v2.version).toBe(2);
  });

  it('refuses a rotation signed only by the new keys, or only by the old', () => {
    const { keys, root } = setup();
    const fresh = { root: [generateKey().key, generateKey().key, generateKey().key], release: keys.release };
    const payload = rootPayloadFor(2, fresh);
    expect(() => verifyNextRoot(root, signedRoot(payload, fresh.root))).toThrow(
      /root v1 \(old keys\) threshold not met/,
    );
    expect(() => verifyNextRoot(root, signedRoot(payload, keys.root))).toThrow(
      /root v2 \(new keys\) threshold not met/,
    );
  });

  it('refuses a rotation that skips or repeats a version', () => {
    const { keys, root } = setup();
    expect(() => verifyNextRoot(root, signedRoot(rootPayloadFor(3, keys), keys.root))).toThrow(
      /root v3 offered where v2 is next/,
    );
    expect(() => verifyNextRoot(root, signedRoot(rootPayloadFor(1, keys), keys.root))).toThrow(
      /root v1 offered where v2 is next/,
    );
  });

  it('refuses a release signed only by a key that root v2 removed', () => {
    const { keys, root } = setup();
    const next = { root: keys.root, release: [keys.release[1]!] };
    const v2 = verifyNextRoot(root, signedRoot(rootPayloadFor(2, next), keys.root));
    const env = signEnvelope('release', release(), [keys.release[0]!]);
    expect(verifySignedDocument(root, env, 'release').signers).toHaveLength(1);
    expect(() => verifySignedDocument(v2, env, 'release')).toThrow(/release threshold not met/);
  });

  it('walks several missed rotations in order and stops an endless chain at the cap', async () => {
    const { keys, root } = setup();
    const chain = new Map<number, Buffer>();
    for (let v = 2; v <= 5; v++) chain.set(v, signedRoot(rootPayloadFor(v, keys), keys.root));
    const walked = await walkRootChain(root, async (v) => chain.get(v) ?? null);
    expect(walked.root.version).toBe(5);
    expect(walked.steps).toHaveLength(4);

    const endless = async (v: number) => signedRoot(rootPayloadFor(v, keys), keys.root);
    await expect(walkRootChain(root, endless)).rejects.toThrow(
      new RegExp(`more than ${MAX_ROOT_ROTATIONS_PER_UPDATE} root rotations`),
    );
  });

  it('reports an expired root', () => {
    const keys = makeKeys(3, 1);
    const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys, { expires: '2020-01-01T00:00:00Z' }), keys.root));
    expect(() => assertRootFresh(root, new Date())).toThrow(/root v1 expired at 2020-01-01T00:00:00Z/);
  });

  it('survives a round trip through the file format', () => {
    const { keys } = setup();
    const bytes = envelopeBytes(signEnvelope('root', rootPayloadFor(1, keys), keys.root));
    expect(verifyInitialRoot(bytes).version).toBe(1);
  });
});
