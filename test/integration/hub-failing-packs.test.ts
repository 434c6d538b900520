import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { buildBusyboxImage, removeAppContainers } from '../helpers/images.js';
import { unique } from '../helpers/names.js';
import { tender } from '../helpers/proc.js';
import {
  composeFile,
  enrolVessel,
  eventuallyOrReport,
  freePort,
  startShore,
  vesselReport,
  waitServing,
  type Shore,
  type Vessel,
} from '../helpers/fleet.js';

/**
 * A hub (or a proxy before it) answering 500 to every pack request (issue 10 item 7, ATTACKS.md 40), with
 * real hub, router and agent processes and the real Docker engine: the agent backs off (a bounded number
 * of pack requests, not one every half second), keeps syncing and shipping telemetry, sees a newer
 * target while the transfer fails, and installs it once the packs come back. The app name is unique to
 * this run; only its containers are removed.
 */
const APP = unique('hs');

interface Seen {
  at: number;
  method: string;
  url: string;
  body: string;
}

/**
 * A pass-through proxy that can answer 500 to every pack request and records what went by. Before an
 * https:// hub it terminates TLS with the hub's own certificate (as a reverse proxy in front of it would).
 */
async function failingProxy(shore: Shore): Promise<{ url: string; seen: Seen[]; failPacks: boolean; server: Server }> {
  const t = new URL(shore.url);
  const state = { url: '', seen: [] as Seen[], failPacks: true, server: undefined as unknown as Server };
  const upstream = t.protocol === 'https:' ? httpsRequest : request;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = req.url ?? '';
      state.seen.push({ at: Date.now(), method: req.method ?? '', url, body: body.subarray(0, 2000).toString() });
      if (state.failPacks && /\/packs(\/|$)/.test(url.split('?')[0]!)) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"internal","message":"proxy failure"}');
        return;
      }
      const up = upstream(
        { host: t.hostname, port: t.port, method: req.method, path: url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  };
  state.server = shore.cert
    ? createHttpsServer({ cert: readFileSync(shore.cert.chainFile), key: readFileSync(shore.cert.keyFile) }, handle)
    : createServer(handle);
  const port = await freePort();
  await new Promise<void>((r) => state.server.listen(port, '127.0.0.1', r));
  state.url = shore.via(port);
  return state;
}

let shore: Shore | undefined;
let vessel: Vessel | undefined;
let proxy: Awaited<ReturnType<typeof failingProxy>> | undefined;

// The hub, router and agent processes stop when the test ends (daemon()); then the proxy and the app's containers.
afterAll(async () => {
  proxy?.server.close();
  removeAppContainers(APP);
  for (const v of ['v1', 'v2'])
    try {
      execFileSync('docker', ['rmi', '-f', `tender-test/${APP}:${v}`], { stdio: 'ignore' });
    } catch {
      /* never built, or already gone */
    }
});

describe('a hub answering 500 to every pack (ATTACKS.md 40)', () => {
  it(
    'backs off, keeps syncing and shipping telemetry, sees the newer target, installs once packs return',
    {
      timeout: 240_000,
    },
    async () => {
      // Images of this run only, removed from the engine once published: the vessel must download them.
      const images = { v1: `tender-test/${APP}:v1`, v2: `tender-test/${APP}:v2` };
      buildBusyboxImage({ tag: images.v1, body: 'portal v1\n' });
      buildBusyboxImage({ tag: images.v2, body: 'portal v2\n' });
      shore = await startShore();
      // Backoff capped at 8 s (the test config's default of 2 s would hide the difference from a fixed retry).
      vessel = await enrolVessel(shore, `ship-${APP}`, { maxBackoffSeconds: 8 });
      proxy = await failingProxy(shore);
      // The vessel reaches the hub through the proxy.
      const config = JSON.parse(readFileSync(vessel.config, 'utf8'));
      writeFileSync(vessel.config, JSON.stringify({ ...config, hub: proxy.url }));
      const port = await freePort();
      const v1 = composeFile(shore.dir, 'v1', images.v1, port, APP);
      const v2 = composeFile(shore.dir, 'v2', images.v2, port, APP);
      const publish = async (compose: string, version: string, image: string) => {
        const p = await tender(
          ['release', 'publish', '--compose', compose, '--key', shore!.releaseKey, '--version', version],
          shore!.env,
        );
        expect(p.code, p.stderr).toBe(0);
        execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
        const r = await tender(['rollout', 'start', version, '--target', `vessel:${vessel!.name}`], shore!.env);
        expect(r.code, r.stderr).toBe(0);
      };
      await vessel.startRouter();
      vessel.startAgent();
      const report = () => vesselReport(vessel!);
      const packs = () => proxy!.seen.filter((s) => /\/packs(\/|$)/.test(s.url.split('?')[0]!));

      await publish(v1, '1.0.0', images.v1);
      await eventuallyOrReport('a first pack request', async () => packs().length > 0, report, 60_000);
      const t0 = packs()[0]!.at;
      // Watch the failure for 20 s.
      await new Promise((r) => setTimeout(r, 20_000));
      const window = proxy.seen.filter((s) => s.at >= t0 && s.at <= t0 + 20_000);
      const packTries = window.filter((s) => /\/packs(\/|$)/.test(s.url.split('?')[0]!)).length;
      // Retrying every 0.5 s would be 40 tries, 20 in the last 10 s; backing off, they thin out.
      expect(packTries, await report()).toBeLessThanOrEqual(20);
      const late = window.filter((s) => s.at > t0 + 10_000 && /\/packs(\/|$)/.test(s.url.split('?')[0]!)).length;
      expect(late, await report()).toBeLessThanOrEqual(8);
      // Syncing went on (1 s polls, each at most backed off to 2 s in this config), and telemetry went ashore.
      const polls = window.filter((s) => s.method === 'GET' && s.url.includes('/desired')).length;
      expect(polls, await report()).toBeGreaterThanOrEqual(5);
      const lastPoll = Math.max(...window.filter((s) => s.url.includes('/desired')).map((s) => s.at));
      expect(lastPoll).toBeGreaterThan(t0 + 15_000);
      expect(window.some((s) => s.method === 'POST' && s.url.includes('/telemetry'))).toBe(true);

      // A newer target is seen while the transfer of the older one is failing.
      await publish(v2, '1.0.1', images.v2);
      await eventuallyOrReport(
        'a pack request for 1.0.1',
        async () => packs().some((s) => s.body.includes('1.0.1')),
        report,
        60_000,
      );
      // Packs come back: the newest target goes live.
      proxy.failPacks = false;
      await waitServing(port, 'portal v2', vessel, 120_000);
    },
  );
});
