import { intOpt, listOpt, requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { checkHubTlsDocument, HUB_TLS_SPEC, showPins, type HubTlsDocument } from '../shared/protocol/hub-tls.js';
import { MEDIA } from '../shared/protocol/http.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import { readCertificates, toPem } from '../shared/tls/certs.js';
import { envelopeBytes, signEnvelope } from '../shared/trust/envelope.js';
import { loadPrivateKey } from '../shared/trust/keys.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../shared/ops-client.js';

/**
 * `tender tls announce`: sign, with a release key on this machine, the list of CAs vessels pin for the hub,
 * and publish it. A CA rotation takes three steps, none of which strands a ship that is offline for weeks:
 * announce the old and the new CA together; once the vessels have it (`tender vessel list` shows who has
 * synced since), switch the hub to a certificate of the new CA (SIGHUP); later, announce the new CA alone.
 */
type Announced = { sequence: number; pins: string[]; created: boolean; hub: string; out: string };

export const tlsAnnounce: Command = {
  path: ['tls', 'announce'],
  summary: 'announce the CAs vessels pin for the hub, signed with a release key (a CA rotation without stranding)',
  details: `Each --pin-ca is a PEM file of one self-signed CA certificate. Vessels replace the CAs they pin with the
ones listed, from their next sync on. The hub refuses a list without the CA it serves under now. Rotate in
three steps: announce old and new together; when the fleet has synced, give the hub a certificate of the new
CA (kill -HUP); then announce the new CA alone.`,
  options: {
    'pin-ca': { type: 'string', multiple: true, description: 'PEM file of a CA certificate vessels are to pin' },
    key: { type: 'string', description: 'release signing key file (never leaves this machine)' },
    sequence: {
      type: 'string',
      description: 'announcement counter; a vessel applies only a higher one',
      default: 'the current UNIX time in seconds',
    },
    out: { type: 'string', description: 'also write the signed announcement here' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    const files = listOpt(ctx, 'pin-ca');
    if (files.length === 0) throw new UsageError('give at least one --pin-ca FILE');
    const target = resolveHubTarget(ctx);
    const key = loadPrivateKey(requiredOpt(ctx, 'key'));
    const cas = files.flatMap((f) => readCertificates(f, '--pin-ca').map(toPem));
    const doc: HubTlsDocument = {
      _type: 'hub-tls',
      spec: HUB_TLS_SPEC,
      // Seconds only go up on one signer's clock: a sequence that needs no hub to hand it out.
      sequence: intOpt(ctx, 'sequence', Math.floor(Date.now() / 1000), 1, 2 ** 40),
      createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      cas,
    };
    checkHubTlsDocument(doc, '--pin-ca');
    const bytes = envelopeBytes(signEnvelope('hub-tls', doc, [key]));
    const out = stringOpt(ctx, 'out');
    if (out) writeFileAtomic(out, bytes, 0o644);
    const r = await opsCall(target, ROUTES.publishHubTls, paths.hubTls(), undefined, {
      raw: bytes,
      contentType: MEDIA.envelope,
    });
    return { sequence: r.sequence, pins: r.pins, created: r.created, hub: target.hub, out: out ?? '' };
  },
  human: (r: Announced) =>
    `${r.created ? 'announced' : 'already announced:'} hub-tls #${r.sequence} on ${r.hub}: vessels pin ` +
    `${showPins(r.pins)} from their next sync` +
    (r.out ? `; signed file also written to ${r.out}` : ''),
};

export const TLS_COMMANDS = [tlsAnnounce];
