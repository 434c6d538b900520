import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { applyHubTlsAnnouncement, pinnedCas } from '../../agent/hub-link.js';
import { vesselPaths } from '../../agent/config.js';
import { openStateStore } from '../../agent/state-store.js';
import { verifyHubTlsEnvelope, type HubTlsDocument } from '../../shared/protocol/hub-tls.js';
import { fingerprintOf } from '../../shared/tls/certs.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { issueCert, makeCaIn } from '../helpers/tls.js';
import { tempDir } from '../helpers/tmp.js';

const keys = makeKeys(3, 1);
const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys), keys.root));
// Two CAs for the whole file (a test's temp dir goes when the test ends), removed after it.
const caDir = mkdtempSync(join(tmpdir(), 'tender-hubtls-ca-'));
afterAll(() => rmSync(caDir, { recursive: true, force: true }));
const made = ['one', 'two'].map((n) => makeCaIn(mkdtempSync(join(caDir, `${n}-`)), `tender-${n}`));
const ca1 = () => made[0]!;
const ca2 = () => made[1]!;

function doc(cas: string[], sequence = 10): HubTlsDocument {
  return { _type: 'hub-tls', spec: 1, sequence, createdAt: '2026-12-03T00:00:00Z', cas };
}
const signed = (d: unknown, key: PrivateKey = keys.release[0]!, type: 'hub-tls' | 'policy' = 'hub-tls') =>
  envelopeBytes(signEnvelope(type, d, [key]));

describe('hub-tls announcement: what is signed', () => {
  it('verifies one signed by a release key of the root, and gives its CAs and pins in order', () => {
    const a = verifyHubTlsEnvelope(root, signed(doc([ca1().pem, ca2().pem])));
    expect(a.pins).toEqual([ca1().pin, ca2().pin]);
    expect(a.cas.map(fingerprintOf)).toEqual(a.pins);
  });

  it.each([
    ['an unknown key', () => signed(doc([ca1().pem]), generateKey().key), /signature/],
    ['a root key (not a release key)', () => signed(doc([ca1().pem]), keys.root[0]!), /signature/],
    ['another document type', () => signed(doc([ca1().pem]), keys.release[0]!, 'policy'), /hub-tls|type/],
    ['no CA', () => signed(doc([])), /cas/],
    ['five CAs', () => signed(doc(Array(5).fill(ca1().pem))), /cas/],
    ['a CA twice', () => signed(doc([ca1().pem, ca1().pem])), /twice/],
    ['a leaf certificate, not a CA', () => signed(doc([issueCert(ca1()).pem])), /self-signed/],
    ['two certificates in one entry', () => signed(doc([ca1().pem + ca2().pem])), /not one/],
    ['not a certificate', () => signed(doc(['hello'])), /no PEM certificate/],
    ['a huge sequence', () => signed(doc([ca1().pem], 2 ** 53)), /sequence/],
    ['an unknown field', () => signed({ ...doc([ca1().pem]), extra: 1 }), /extra|unrecognized/i],
  ])('refuses %s with one line', (_what, make, reason) => {
    let message = '';
    try {
      verifyHubTlsEnvelope(root, make());
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(reason);
    expect(message).not.toContain('\n');
  });
});

describe('hub-tls announcement on board', () => {
  function vessel(trust: 'pinned' | 'system' = 'pinned') {
    const dir = tempDir('tender-hubtls-');
    writeFileSync(vesselPaths(dir).hubCa, ca1().pem);
    const store = openStateStore(vesselPaths(dir));
    const config = { dataDir: dir, hubTrust: trust, hub: 'https://hub.example:8443' } as const;
    const events = (type: string) =>
      store.outbox
        .nextBatch(100_000, 1e9)
        .filter((r) => r.kind === 'event' && r.source === type)
        .map((r) => JSON.parse(r.body) as Record<string, unknown>);
    const apply = (bytes: Buffer) =>
      applyHubTlsAnnouncement(config, root, bytes.toString('base64'), store, pino({ level: 'silent' }));
    const pins = () => pinnedCas(dir).map(fingerprintOf);
    return { dir, store, events, apply, pins };
  }

  it('replaces the pins once per sequence, with one event, and keeps them against an older replay', () => {
    const v = vessel();
    v.apply(signed(doc([ca1().pem, ca2().pem], 10)));
    expect(v.pins()).toEqual([ca1().pin, ca2().pin]);
    v.apply(signed(doc([ca1().pem, ca2().pem], 10)));
    expect(v.events('hub-tls.pinned')).toEqual([{ sequence: 10, pins: [ca1().pin, ca2().pin], before: [ca1().pin] }]);
    v.apply(signed(doc([ca2().pem], 11)));
    expect(v.pins()).toEqual([ca2().pin]);
    // The older announcement, replayed by whoever holds it: refused once, the pins stay.
    v.apply(signed(doc([ca1().pem], 10)));
    v.apply(signed(doc([ca1().pem], 10)));
    expect(v.pins()).toEqual([ca2().pin]);
    expect(v.events('hub-tls.refused')).toEqual([{ reason: 'hub-tls #10 is older than #11, the one applied' }]);
    expect(v.store.get('hubTls.sequence')).toBe(11);
  });

  it('refuses a forged announcement (the hub holds no release key) and keeps the pinned file as it was', () => {
    const v = vessel();
    const before = readFileSync(vesselPaths(v.dir).hubCa);
    v.apply(signed(doc([ca2().pem], 12), generateKey().key));
    expect(readFileSync(vesselPaths(v.dir).hubCa)).toEqual(before);
    expect(v.events('hub-tls.refused')).toHaveLength(1);
    expect(v.store.get('hubTls.sequence')).toBeUndefined();
  });

  it('leaves a vessel that trusts the system store alone', () => {
    const v = vessel('system');
    v.apply(signed(doc([ca2().pem], 12)));
    expect(v.pins()).toEqual([ca1().pin]);
    expect(v.events('hub-tls.pinned')).toHaveLength(0);
  });
});
