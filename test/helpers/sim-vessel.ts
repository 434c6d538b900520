import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { gzipSync } from 'node:zlib';
import { desiredStateSchema, type DesiredState } from '../../shared/protocol/bodies.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { ROLLOUT_OUTCOME_EVENT, type RolloutOutcomeEvent } from '../../shared/protocol/rollout-outcome.js';
import { paths } from '../../shared/protocol/routes.js';
import { CLASS, encodeBatch, type WireRecord } from '../../shared/protocol/telemetry-wire.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { generateKey, loadPrivateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import type { ReleaseManifest } from '../../shared/protocol/manifest.js';

/**
 * A light simulated vessel for fleet-scale journeys: enrolled through the real API with its own key, it
 * polls its desired state over HTTP with signed requests and reports `rollout.outcome` events through the
 * real telemetry route, exactly as the agent's outbox does (one epoch, increasing sequence numbers, kept
 * while "offline" and sent in order when it returns). It runs no containers: `behave` decides what a
 * target release does on it (healthy, gate failed).
 */
export type SimBehaviour = (app: string, version: string) => 'healthy' | 'gate-failed';

export interface SimVessel {
  name: string;
  id: string;
  online: boolean;
  /** What it runs per app (after a healthy install). */
  running: Map<string, string>;
  /** Outcomes queued and not yet acknowledged by the hub. */
  queued: number;
  /** What the hub's answers to its telemetry said, summed over every address a batch went to. */
  acks: { stored: number; duplicates: number };
  /** One poll: fetch the desired state, act on new targets, ship the queue. Nothing when offline. */
  step(): Promise<void>;
}

function postFrom(url: string, body: string, localAddress?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    // https:// hubs are trusted through the run's CA (NODE_EXTRA_CA_CERTS, test/global-setup.ts).
    const req = (url.startsWith('https:') ? httpsRequest : request)(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json' }, localAddress, timeout: 30_000 },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('enrol timed out')));
    req.end(body);
  });
}

export async function enrolSimVessel(
  hub: { url: string },
  opsToken: string,
  name: string,
  groups: string[],
  behave: SimBehaviour,
  opts: {
    localAddress?: string;
    /**
     * Other addresses of the same hub (processes behind its load balancer): each batch also goes to every one
     * of them at the same moment, as a retry does when the first answer was lost on the link.
     */
    retryVia?: string[];
  } = {},
): Promise<SimVessel> {
  const add = await fetch(`${hub.url}${paths.vessels()}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${opsToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, groups }),
  });
  if (add.status !== 201) throw new Error(`vessel add ${name}: ${add.status} ${await add.text()}`);
  const key: PrivateKey = generateKey().key;
  const token = ((await add.json()) as { token: string }).token;
  const enrolBody = JSON.stringify({ token, publicKey: key.publicRaw.toString('base64') });
  // From its own loopback address when given: the hub limits enrolment attempts per address.
  const enrol = await postFrom(`${hub.url}${paths.enrol()}`, enrolBody, opts.localAddress);
  if (enrol.status !== 200) throw new Error(`enrol ${name}: ${enrol.status} ${enrol.text}`);
  const id = (JSON.parse(enrol.text) as { vesselId: string }).vesselId;
  const epoch = randomBytes(8).toString('hex');
  let seq = 0;
  const outbox: WireRecord[] = [];
  let etag = '';
  let desired: DesiredState | undefined;
  /** The last outcome reported per app and version, so each change is one event (as the agent does). */
  const reported = new Map<string, string>();
  const acks = { stored: 0, duplicates: 0 };

  const signed = (method: string, path: string, body?: Buffer) =>
    signVesselRequest(key, id, method, path, Date.now(), body);

  function report(ev: RolloutOutcomeEvent): void {
    const k = `${ev.app}@${ev.version}`;
    if (reported.get(k) === ev.outcome) return;
    reported.set(k, ev.outcome);
    outbox.push({
      seq: ++seq,
      ts: Date.now(),
      cls: CLASS.event,
      kind: 'event',
      source: ROLLOUT_OUTCOME_EVENT,
      body: JSON.stringify(ev),
      bootId: 'sim',
    });
  }

  async function ship(): Promise<void> {
    if (outbox.length === 0) return;
    const batch = outbox.slice(0, 500);
    const body = gzipSync(Buffer.from(JSON.stringify(encodeBatch(epoch, batch, {}, outbox.length - batch.length))));
    const path = paths.vesselTelemetry(name);
    const post = async (base: string) => {
      const r = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { ...signed('POST', path, body), 'content-type': MEDIA.telemetry, 'content-encoding': 'gzip' },
        body,
      });
      if (r.status === 429) return false;
      if (r.status !== 200) throw new Error(`telemetry ${name} via ${base}: ${r.status} ${await r.text()}`);
      const a = (await r.json()) as { stored: number; duplicates: number };
      acks.stored += a.stored;
      acks.duplicates += a.duplicates;
      return true;
    };
    const answers = await Promise.all([hub.url, ...(opts.retryVia ?? [])].map(post));
    // Rate limited: kept, sent on a later step (as the agent's outbox does).
    if (!answers.some(Boolean)) return;
    outbox.splice(0, batch.length);
  }

  const v: SimVessel = {
    name,
    id,
    online: true,
    running: new Map(),
    acks,
    get queued() {
      return outbox.length;
    },
    async step() {
      if (!v.online) return;
      const path = paths.vesselDesired(name);
      const r = await fetch(`${hub.url}${path}`, {
        headers: { ...signed('GET', path), ...(etag && { 'if-none-match': etag }) },
      });
      if (r.status === 200) {
        desired = desiredStateSchema.parse(await r.json());
        etag = r.headers.get('etag') ?? '';
      } else if (r.status !== 304) throw new Error(`desired ${name}: ${r.status} ${await r.text()}`);
      for (const a of desired?.apps ?? []) {
        const last = reported.get(`${a.app}@${a.version}`);
        if (last === 'failed' || last === 'installed-healthy') continue;
        const base = { app: a.app, version: a.version, rolloutId: a.rolloutId };
        report({ ...base, outcome: 'downloading', progress: { done: 0, total: 1000 } });
        if (behave(a.app, a.version) === 'healthy') {
          v.running.set(a.app, a.version);
          report({ ...base, outcome: 'installed-healthy' });
        } else
          report({
            ...base,
            outcome: 'failed',
            failure: 'gate-failed',
            reason: `health gate failed: GET /health answered 503 (sim ${name})`,
          });
      }
      await ship();
    },
  };
  return v;
}

/**
 * A release published over HTTP with an ops token, signed with a release key file (no chunks: simulated
 * vessels do not download). Returns the envelope's bytes.
 */
export async function publishSimRelease(
  hubUrl: string,
  opsToken: string,
  keyFile: string,
  r: { app: string; version: string; sequence: number },
): Promise<Buffer> {
  const m: ReleaseManifest = {
    _type: 'release',
    spec: 1,
    app: r.app,
    version: r.version,
    sequence: r.sequence,
    createdAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    services: {},
    images: {},
  };
  const envelope = envelopeBytes(signEnvelope('release', m, [loadPrivateKey(keyFile)]));
  const pub = await fetch(`${hubUrl}${paths.releases()}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${opsToken}`, 'content-type': MEDIA.envelope },
    body: new Uint8Array(envelope),
  });
  if (pub.status !== 201) throw new Error(`publish: ${pub.status} ${await pub.text()}`);
  return envelope;
}
