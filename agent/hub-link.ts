import { existsSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { createHubFetch, HubTlsError, type HubFetch, type LinkMeter } from '../shared/tls/hub-fetch.js';
import { fingerprintOf, parseCertificates, readPemFile, showFingerprint, toPem } from '../shared/tls/certs.js';
import { vesselPaths, type AgentConfig } from './config.js';

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
  const ca = security.trust === 'pinned' ? pinnedCas(config.dataDir).map(toPem) : undefined;
  if (security.trust === 'pinned' && ca!.length === 0) {
    return () => Promise.reject(new HubTlsError(`no pinned hub CA in ${paths.hubCa}: refusing the link (enrol again)`));
  }
  return createHubFetch({ ca, allowHttp: security.trust === 'insecure-http', sessionFile: paths.tlsSession, meter });
}
