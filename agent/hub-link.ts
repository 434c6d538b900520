import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { X509Certificate } from 'node:crypto';
import { createHubFetch, HubTlsError, type HubFetch, type LinkMeter } from '../shared/tls/hub-fetch.js';
import { fingerprintOf, parseCertificates, readPemFile, showFingerprint, toPem } from '../shared/tls/certs.js';
import { vesselPaths, type AgentConfig } from './config.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { errorMessage } from '../shared/errors.js';
import { showPins, verifyHubTlsEnvelope } from '../shared/protocol/hub-tls.js';
import type { TrustedRoot } from '../shared/trust/root.js';
import type { StateStore } from './state-store.js';

/** How the link to the hub is protected, as `tender status` says it. */
export interface LinkSecurity {
  encrypted: boolean;
  trust: 'pinned' | 'system' | 'insecure-http' | 'refused';
  /** Fingerprints of the pinned certificates (SHA256:AB:CD...). */
  pins: string[];
  note: string;
}

/** The certificates pinned for the hub (empty when none are kept). */
export function pinnedCas(dataDir: string): X509Certificate[] {
  const path = vesselPaths(dataDir).hubCa;
  if (!existsSync(path)) return [];
  return parseCertificates(readPemFile(path, 'pinned hub CA'), path);
}

export function linkSecurity(config: AgentConfig): LinkSecurity {
  const https = config.hub.startsWith('https://');
  if (!https) {
    return config.hubTrust === 'insecure-http'
      ? { encrypted: false, trust: 'insecure-http', pins: [], note: 'NOT ENCRYPTED: plain http:// (insecure-http)' }
      : {
          encrypted: false,
          trust: 'refused',
          pins: [],
          note: 'NOT ENCRYPTED: the hub is http://, so the agent does not talk to it (hubTrust is not insecure-http)',
        };
  }
  if (config.hubTrust === 'pinned') {
    let pins: string[] = [];
    try {
      pins = pinnedCas(config.dataDir).map((c) => showFingerprint(fingerprintOf(c)));
    } catch {
      /* shown as none pinned; the agent says why when it connects */
    }
    return {
      encrypted: true,
      trust: 'pinned',
      pins,
      note:
        `TLS 1.3, hub pinned to ${pins[0] ?? 'nothing (hub-ca.pem unreadable)'}` +
        (pins.length > 1 ? ` and ${pins.length - 1} more` : ''),
    };
  }
  return {
    encrypted: true,
    trust: 'system',
    pins: [],
    note: 'TLS 1.3, hub certificate checked against the system store',
  };
}

/** The fetch the agent talks to its hub with, as agent.json says to trust it. */
export function hubFetchFor(config: AgentConfig, meter?: LinkMeter): HubFetch {
  const paths = vesselPaths(config.dataDir);
  const security = linkSecurity(config);
  if (security.trust === 'refused') {
    return () =>
      Promise.reject(
        new HubTlsError(
          `hub ${config.hub} is plain http://: refusing to send anything in clear (enrol again against an https:// hub, or set "hubTrust": "insecure-http" in agent.json)`,
        ),
      );
  }
  if (security.trust === 'pinned' && pinnedCas(config.dataDir).length === 0) {
    return () => Promise.reject(new HubTlsError(`no pinned hub CA in ${paths.hubCa}: refusing the link (enrol again)`));
  }
  // Read at each new connection: a hub-tls announcement replaces the pins while the agent runs.
  // Unreadable then: no CA at all, so the handshake fails closed (never the system store instead).
  const pins =
    security.trust === 'pinned'
      ? () => {
          try {
            return pinnedCas(config.dataDir).map(toPem);
          } catch {
            return [];
          }
        }
      : undefined;
  return createHubFetch({
    ca: pins,
    allowHttp: security.trust === 'insecure-http',
    sessionFile: paths.tlsSession,
    meter,
  });
}

/**
 * A signed hub-tls announcement from the desired state (shared/protocol/hub-tls.ts): verified against the
 * trusted root, applied once per sequence by replacing hub-ca.pem (atomically: the old pins or the new,
 * never neither), so the next connection trusts the CAs it lists. A refused one changes nothing and is an
 * event once. Only a pinned link uses it; a hub checked against the system store needs no pins.
 */
export function applyHubTlsAnnouncement(
  config: Pick<AgentConfig, 'dataDir' | 'hubTrust' | 'hub'>,
  root: TrustedRoot,
  base64: string,
  store: StateStore,
  log: Logger,
): void {
  if (config.hubTrust !== 'pinned' || !config.hub.startsWith('https://')) return;
  const refuse = (reason: string) => {
    if (store.get('hubTls.refused') === reason) return;
    store.set('hubTls.refused', reason);
    store.event('hub-tls.refused', { reason });
    log.warn({ reason }, 'hub TLS announcement refused; the pinned CAs stay');
  };
  let a;
  try {
    a = verifyHubTlsEnvelope(root, Buffer.from(base64, 'base64'));
  } catch (err) {
    return refuse(errorMessage(err));
  }
  const held = store.get('hubTls.sequence') ?? 0;
  if (a.doc.sequence === held) return;
  if (a.doc.sequence < held) return refuse(`hub-tls #${a.doc.sequence} is older than #${held}, the one applied`);
  const path = vesselPaths(config.dataDir).hubCa;
  const before = pinnedCas(config.dataDir).map(fingerprintOf);
  writeFileAtomic(path, a.cas.map(toPem).join(''), 0o644);
  store.setMany({ 'hubTls.sequence': a.doc.sequence, 'hubTls.refused': null });
  store.event('hub-tls.pinned', { sequence: a.doc.sequence, pins: a.pins, before });
  log.info({ sequence: a.doc.sequence, pins: showPins(a.pins) }, 'hub CAs pinned from a signed announcement');
}
