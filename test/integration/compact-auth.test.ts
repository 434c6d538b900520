import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HubClient } from '../../agent/hub-client.js';
import { paths } from '../../shared/protocol/routes.js';
import { COMPACT_AUTH_HEADER, signVesselRequestCompact } from '../../shared/protocol/vessel-auth.js';
import { enrolVessel, startHub } from '../helpers/hub.js';

/**
 * The compact signature form (issue 12's idle bytes): a hub says on a desired state that it takes it, the
 * agent then signs its vessel's paths compactly, and the hub holds it to the same rules as the full form:
 * only its own vessel's paths, inside the clock window, once.
 */
describe('compact vessel signatures', () => {
  it("accepts them for the vessel's own paths only, once, and the agent moves to them when told", async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const b = await enrolVessel(hub, 'ship-b');
    const desired = paths.vesselDesired('ship-a', { with: 'manifest' });
    const first = await hub.app.inject({ url: desired, headers: a.sign('GET', desired).headers });
    expect(first.statusCode).toBe(200);
    expect(first.headers[COMPACT_AUTH_HEADER]).toBe('tv');
    const headers = signVesselRequestCompact(a.key, 'GET', desired, Date.now());
    expect((await hub.app.inject({ url: desired, headers })).statusCode).toBe(200);
    // The same captured request again: a replay.
    expect((await hub.app.inject({ url: desired, headers })).statusCode).toBe(401);
    // A's key on B's path: the path names B, whose key did not sign it.
    const other = paths.vesselDesired('ship-b', { with: 'manifest' });
    const stolen = signVesselRequestCompact(a.key, 'GET', other, Date.now());
    expect((await hub.app.inject({ url: other, headers: stolen })).statusCode).toBe(401);
    // Off the clock window; a route whose path names no vessel.
    const late = signVesselRequestCompact(a.key, 'GET', desired, Date.now() - 10 * 60_000);
    expect((await hub.app.inject({ url: desired, headers: late })).statusCode).toBe(401);
    const root = paths.root(1);
    const noName = signVesselRequestCompact(a.key, 'GET', root, Date.now());
    expect((await hub.app.inject({ url: root, headers: noName })).statusCode).toBe(401);
    // A 304 says it to a vessel signing in full (an agent upgraded in place, its ETag kept), and to one
    // signing compactly it says nothing (bytes on every poll).
    const etag = first.headers.etag as string;
    const full = await hub.app.inject({
      url: desired,
      headers: { ...a.sign('GET', desired).headers, 'if-none-match': etag },
    });
    expect(full.statusCode).toBe(304);
    expect(full.headers[COMPACT_AUTH_HEADER]).toBe('tv');
    const again = signVesselRequestCompact(a.key, 'GET', desired, Date.now());
    const unchanged = await hub.app.inject({ url: desired, headers: { ...again, 'if-none-match': etag } });
    expect(unchanged.statusCode).toBe(304);
    expect(unchanged.headers[COMPACT_AUTH_HEADER]).toBeUndefined();

    // The agent's client: full form until the hub says, compact after, and kept by the caller.
    const url = await hub.listen();
    const seen: string[] = [];
    const learnt: boolean[] = [];
    const spy: typeof fetch = (input, init) => {
      seen.push(String((init?.headers as Record<string, string>).authorization).split(' ')[0]!);
      return fetch(input, init);
    };
    const client = new HubClient(
      url,
      b.id,
      b.key,
      0,
      () => {},
      undefined,
      spy,
      false,
      (c) => learnt.push(c),
    );
    const got = await client.getDesired('ship-b');
    await client.getDesired('ship-b', got!.etag);
    await client.getRoot(1);
    expect(seen).toEqual(['Tender-Vessel', 'TV', 'Tender-Vessel']);
    expect(learnt).toEqual([true]);
    // Upgraded in place: its ETag kept, every poll a 304, and still it hears it on the first one.
    const upgraded = new HubClient(
      url,
      b.id,
      b.key,
      0,
      () => {},
      undefined,
      spy,
      false,
      (c) => learnt.push(c),
    );
    seen.length = 0;
    expect(await upgraded.getDesired('ship-b', got!.etag)).toBeUndefined();
    expect(await upgraded.getDesired('ship-b', got!.etag)).toBeUndefined();
    expect(seen).toEqual(['Tender-Vessel', 'TV']);
    expect(learnt).toEqual([true, true]);
  });

  it('signs in full again when the hub stops taking the compact form (an older hub put back)', async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-c');
    const real = await hub.listen();
    // An older hub: refuses what it cannot parse, as it refused every unknown scheme.
    const old = createServer((req, res) => {
      if (req.headers.authorization?.startsWith('TV ')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
        return;
      }
      fetch(`${real}${req.url}`, { headers: req.headers as Record<string, string> })
        .then(async (r) => {
          const h: Record<string, string> = {};
          r.headers.forEach((val, k) => {
            if (k !== COMPACT_AUTH_HEADER && k !== 'content-length' && k !== 'transfer-encoding') h[k] = val;
          });
          res.writeHead(r.status, h).end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.writeHead(502).end());
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    try {
      const learnt: boolean[] = [];
      const client = new HubClient(
        `http://127.0.0.1:${(old.address() as AddressInfo).port}`,
        v.id,
        v.key,
        0,
        () => {},
        undefined,
        fetch,
        true,
        (c) => learnt.push(c),
      );
      expect(await client.getDesired('ship-c')).toBeDefined();
      expect(learnt).toEqual([false]);
      expect(client.compactAuth).toBe(false);
    } finally {
      old.close();
    }
  });
});
