import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../../shared/trust/keys.js';
import { enrolVessel, startHub } from '../helpers/hub.js';
import { createOpsToken } from '../../hub/ops-tokens.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { paths, ROUTES } from '../../shared/protocol/routes.js';

const UNAUTHORIZED = { error: 'unauthorized', message: 'missing, invalid or expired credentials' };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

type Schema = Record<string, unknown>;
type Content = Record<string, { schema?: Schema }>;
interface Operation {
  security?: unknown[];
  requestBody?: { content?: Content };
  responses?: Record<string, { description?: string; content?: Content }>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

/** The document the hub serves, asked for without a token (it is not a secret). */
async function openApiOf(hub: Awaited<ReturnType<typeof startHub>>): Promise<OpenApi> {
  const res = await hub.app.inject('/api/v1/openapi.json');
  expect(res.statusCode).toBe(200);
  return res.json() as OpenApi;
}

/** Every documented route with its path parameters filled in. */
function documentedRoutes(doc: OpenApi): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (op.security?.length === 0) continue;
      out.push({
        method: method.toUpperCase(),
        url: path
          .replace('{name}', 'ship-a')
          .replace('{version}', path.includes('releases') ? 'sms@1' : '1')
          .replace('{id}', '0'.repeat(32)),
      });
    }
  }
  return out;
}

describe('hub: credentials and roles', () => {
  it('answers health, readiness and metrics without credentials', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-a');
    expect((await hub.app.inject('/health')).json()).toEqual({ status: 'ok' });
    expect((await hub.app.inject('/ready')).statusCode).toBe(200);
    const m = await hub.app.inject('/metrics');
    expect(m.body).toMatch(/^tender_vessels_registered 1$/m);
    expect(m.body).toMatch(/^tender_vessels_active 0$/m);
    expect(m.body).toMatch(/process_cpu_user_seconds_total/);
  });

  it('refuses every documented route without, with garbled, or with revoked credentials: 401, one body', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-a');
    const revoked = await createOpsToken(hub.deps.store, 'admin', 'gone', Date.now());
    await hub.deps.store.opsTokens.revoke(revoked.id, Date.now());
    const routes = documentedRoutes(await openApiOf(hub));
    expect(routes.length).toBeGreaterThan(10);
    for (const r of [...routes, { method: 'GET', url: '/api/v1/no-such-route' }]) {
      for (const headers of [
        {},
        bearer('tnd_garbage'),
        bearer(revoked.token),
        { authorization: 'Tender-Vessel id=v_0000000000000000, ts=1, sig=xx' },
      ]) {
        const res = await hub.app.inject({
          method: r.method as 'GET',
          url: r.url,
          headers,
          payload: r.method === 'GET' ? undefined : {},
        });
        expect(res.statusCode, `${r.method} ${r.url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.json()).toEqual(UNAUTHORIZED);
      }
    }
  });

  it('documents every API route it serves, with its request and response bodies', async () => {
    const hub = await startHub();
    const openapi = await openApiOf(hub);
    const ops = Object.entries(openapi.paths).flatMap(([p, byMethod]) =>
      Object.entries(byMethod).map(([m, op]) => ({
        route: `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`,
        op,
      })),
    );
    const documented = new Set(ops.map((o) => o.route));
    const served = hub.routes.filter(
      (r) => r.includes('/api/') || ['/health', '/ready', '/metrics'].some((p) => r.endsWith(` ${p}`)),
    );
    expect(served.length).toBeGreaterThan(25);
    expect(served.filter((r) => !documented.has(r))).toEqual([]);
    // A body is described when each media type it comes in carries a schema that says something.
    const described = (c: Content | undefined) =>
      c !== undefined &&
      Object.keys(c).length > 0 &&
      Object.values(c).every((m) => m.schema !== undefined && Object.keys(m.schema).length > 0);
    const undescribed: string[] = [];
    for (const { route, op } of ops) {
      if (/^(POST|PUT) /.test(route) && !described(op.requestBody?.content)) undescribed.push(`${route} request`);
      const answers = Object.entries(op.responses ?? {});
      if (!answers.some(([code]) => code.startsWith('2'))) undescribed.push(`${route} has no success answer`);
      for (const [code, r] of answers) {
        if (!r.description) undescribed.push(`${route} ${code} description`);
        if (code !== '204' && code !== '304' && !described(r.content)) undescribed.push(`${route} ${code} body`);
      }
    }
    expect(undescribed).toEqual([]);
    // Bytes on the wire are named by their media type, one per layout.
    expect(Object.keys(openapi.paths[paths.chunks()]!.post!.requestBody!.content!)).toEqual([
      'application/vnd.tender.upload-pack',
    ]);
    expect(
      Object.keys(openapi.paths[ROUTES.getPack.url.replace(/:(\w+)/g, '{$1}')]!.get!.responses!['200']!.content!),
    ).toEqual(['application/vnd.tender.pack']);
    expect(openapi.openapi).toBe('3.1.0');
    // The reference for people, from the same document, also without a token.
    const page = await hub.app.inject('/api/v1/docs');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    for (const { route } of ops) expect(page.body).toContain(route.split(' ')[1]!.replace(/:(\w+)/g, '{$1}'));
  });

  it('checks the role of ops tokens: viewer reads, operator adds, admin revokes', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-a');
    const viewer = bearer(hub.token('viewer'));
    const operator = bearer(hub.token('operator'));
    expect((await hub.app.inject({ url: paths.vessels(), headers: viewer })).statusCode).toBe(200);
    const add = await hub.app.inject({
      method: 'POST',
      url: paths.vessels(),
      headers: viewer,
      payload: { name: 'ship-b' },
    });
    expect(add.statusCode).toBe(403);
    expect(add.json().message).toBe('needs the operator role, token has viewer');
    expect(
      (await hub.app.inject({ method: 'POST', url: paths.vesselRevoke('ship-a'), headers: operator, payload: {} }))
        .statusCode,
    ).toBe(403);
    expect(
      (
        await hub.app.inject({
          method: 'POST',
          url: paths.opsTokens(),
          headers: operator,
          payload: { role: 'admin', name: 'x' },
        })
      ).statusCode,
    ).toBe(403);
    expect(await hub.deps.store.vessels.getByName('ship-b')).toBeUndefined();
    expect((await hub.deps.store.vessels.getByName('ship-a'))!.revokedAt).toBeNull();
  });

  it('refuses vessel credentials on ops routes with 403', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const calls: [string, string, unknown?][] = [
      ['GET', paths.vessels()],
      ['POST', paths.vessels(), { name: 'evil' }],
      ['POST', paths.vesselRevoke('ship-a'), {}],
      ['POST', paths.vesselTokens('ship-a'), {}],
      ['POST', paths.opsTokens(), { role: 'admin', name: 'x' }],
    ];
    for (const [method, url, body] of calls) {
      const s = a.sign(method, url, body);
      const res = await hub.app.inject({ method: method as 'GET', url, headers: s.headers, payload: s.payload });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
    }
    expect(await hub.deps.store.vessels.getByName('evil')).toBeUndefined();
  });

  it("answers 404 when vessel A asks for vessel B's anything, as for a vessel that does not exist", async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    await enrolVessel(hub, 'ship-b');
    for (const [method, url, body] of [
      ['GET', paths.vessel('ship-b')],
      ['GET', paths.vesselDesired('ship-b')],
      ['POST', paths.vesselStatus('ship-b'), { agentVersion: 'x' }],
      ['GET', paths.vesselDesired('nobody')],
    ] as const) {
      const s = a.sign(method, url, body);
      const res = await hub.app.inject({ method, url, headers: s.headers, payload: s.payload });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().message).toMatch(/no vessel named (ship-b|nobody)/);
    }
    const own = a.sign('GET', paths.vesselDesired('ship-a'));
    expect((await hub.app.inject({ url: paths.vesselDesired('ship-a'), headers: own.headers })).json()).toMatchObject({
      vessel: 'ship-a',
      release: null,
    });
  });

  it('refuses a vessel request whose body differs from the signed digest, or whose timestamp is stale', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const url = paths.vesselStatus('ship-a');
    const s = a.sign('POST', url, { agentVersion: '1' });
    const swapped = await hub.app.inject({
      method: 'POST',
      url,
      headers: s.headers,
      payload: JSON.stringify({ agentVersion: '2' }),
    });
    expect(swapped.statusCode).toBe(401);
    const old = a.sign('GET', paths.vesselDesired('ship-a'), undefined, Date.now() - 3600_000);
    expect((await hub.app.inject({ url: paths.vesselDesired('ship-a'), headers: old.headers })).statusCode).toBe(401);
    // A signature for one path does not authorise another.
    const other = a.sign('GET', paths.vessel('ship-a'));
    expect((await hub.app.inject({ url: paths.vesselDesired('ship-a'), headers: other.headers })).statusCode).toBe(401);
  });

  it('refuses a captured vessel request replayed after the vessel was revoked', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const captured = a.sign('GET', paths.vesselDesired('ship-a'));
    expect((await hub.app.inject({ url: paths.vesselDesired('ship-a'), headers: captured.headers })).statusCode).toBe(
      200,
    );
    const rev = await hub.app.inject({
      method: 'POST',
      url: paths.vesselRevoke('ship-a'),
      headers: bearer(hub.token('admin')),
      payload: {},
    });
    expect(rev.json().state).toBe('revoked');
    const replay = await hub.app.inject({ url: paths.vesselDesired('ship-a'), headers: captured.headers });
    expect(replay.statusCode).toBe(401);
    expect(replay.json()).toEqual(UNAUTHORIZED);
  });

  it('answers 304 to a poll whose If-None-Match matches the desired state', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const url = paths.vesselDesired('ship-a');
    const first = await hub.app.inject({ url, headers: a.sign('GET', url).headers });
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{11}"$/);
    const second = await hub.app.inject({ url, headers: { ...a.sign('GET', url).headers, 'if-none-match': etag } });
    expect(second.statusCode).toBe(304);
    expect(second.body).toBe('');
  });
});

describe('hub: enrolment tokens', () => {
  async function addVessel(
    hub: Awaited<ReturnType<typeof startHub>>,
    name: string,
    extra: Record<string, unknown> = {},
  ) {
    const r = await hub.app.inject({
      method: 'POST',
      url: paths.vessels(),
      headers: bearer(hub.token('operator')),
      payload: { name, ...extra },
    });
    expect(r.statusCode, r.body).toBe(201);
    return r.json().token as string;
  }
  const enrol = (hub: Awaited<ReturnType<typeof startHub>>, token: string) =>
    hub.app.inject({
      method: 'POST',
      url: paths.enrol(),
      payload: { token, publicKey: generateKey().key.publicRaw.toString('base64') },
    });

  it('accepts a token once; a second use is refused and changes nothing', async () => {
    const hub = await startHub();
    const token = await addVessel(hub, 'ship-a');
    const first = await enrol(hub, token);
    expect(first.statusCode).toBe(200);
    expect(Buffer.from(first.json().root, 'base64')).toEqual(hub.rootBytes);
    const key = (await hub.deps.store.vessels.getByName('ship-a'))!.publicKey;
    const again = await enrol(hub, token);
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toBe('enrolment token was already used');
    expect((await hub.deps.store.vessels.getByName('ship-a'))!.publicKey).toBe(key);
  });

  it('refuses an expired token', async () => {
    let now = Date.now();
    const hub = await startHub({ now: () => now });
    const token = await addVessel(hub, 'ship-a', { ttlSeconds: 60 });
    now += 61_000;
    const r = await enrol(hub, token);
    expect(r.statusCode).toBe(401);
    expect(r.json().message).toBe('enrolment token has expired');
    expect((await hub.deps.store.vessels.getByName('ship-a'))!.enrolledAt).toBeNull();
  });

  it('lets exactly one of many enrolments racing on one token win', async () => {
    const hub = await startHub();
    const url = await hub.listen();
    const token = await addVessel(hub, 'ship-a');
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetch(`${url}${paths.enrol()}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token, publicKey: generateKey().key.publicRaw.toString('base64') }),
        }).then((r) => r.status),
      ),
    );
    expect(results.filter((s) => s === 200)).toHaveLength(1);
    expect(results.filter((s) => s === 409)).toHaveLength(7);
  });

  it('refuses tokens that are garbled or pin a root the hub does not have', async () => {
    const hub = await startHub();
    const token = await addVessel(hub, 'ship-a');
    for (const bad of ['tne_nope', token.replace(/\.1\./, '.7.'), `${token.slice(0, 10)}x${token.slice(11)}`]) {
      const r = await enrol(hub, bad);
      expect(r.statusCode, bad).toBe(401);
    }
  });

  it('rate-limits enrolment attempts per address with 429 and Retry-After', async () => {
    const hub = await startHub({ limits: { ENROL_ATTEMPTS_PER_MINUTE: 3 } });
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await enrol(hub, 'tne_guess')).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    const r = await enrol(hub, 'tne_guess');
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('rejects vessel names that are not plain identifiers (and injection attempts) with 400', async () => {
    const hub = await startHub();
    for (const name of ["x' OR 1=1--", 'A', '', 'a'.repeat(64), '../etc']) {
      const r = await hub.app.inject({
        method: 'POST',
        url: paths.vessels(),
        headers: bearer(hub.token('operator')),
        payload: { name },
      });
      expect(r.statusCode, name).toBe(400);
      expect(r.json().message).toMatch(/^name: /);
    }
    const q = await hub.app.inject({
      url: `${paths.vessels()}?limit=1;DROP TABLE vessels`,
      headers: bearer(hub.token('viewer')),
    });
    expect(q.statusCode).toBe(400);
    expect(
      (await hub.app.inject({ url: paths.vessels({ limit: 100000 }), headers: bearer(hub.token('viewer')) }))
        .statusCode,
    ).toBe(400);
    expect(
      (
        await hub.app.inject({
          url: paths.vessel("x' OR '1'='1"),
          headers: bearer(hub.token('viewer')),
        })
      ).statusCode,
    ).toBe(400);
  });
});

describe('hub: bad bodies and slow clients', () => {
  const post = (
    hub: Awaited<ReturnType<typeof startHub>>,
    payload: string | Buffer,
    headers: Record<string, string> = {},
  ) =>
    hub.app.inject({
      method: 'POST',
      url: paths.vessels(),
      headers: { ...bearer(hub.token('operator')), 'content-type': 'application/json', ...headers },
      payload,
    });

  it('answers 413 to a body over the route limit', async () => {
    const hub = await startHub();
    const r = await post(hub, JSON.stringify({ name: 'ship', pad: 'x'.repeat(100 * 1024) }));
    expect(r.statusCode).toBe(413);
    expect(r.json().error).toBe('too_large');
  });

  it('answers 400 with a message, never 500, to malformed JSON of every kind', async () => {
    const hub = await startHub();
    const cases: [string | Buffer, RegExp][] = [
      ['{"name":"ship"', /truncated/],
      ['['.repeat(100_000 / 2), /nesting deeper/],
      ['{"name":1e400}', /out of range/],
      ['{"name":"a","name":"b"}', /duplicate key/],
      [Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), /UTF-8/],
      ['{"name":123}', /^name: /],
      ['{"name":"ship","groups":"north"}', /^groups: /],
      ['{"__proto__":{"role":"admin"}}', /forbidden key/],
    ];
    for (const [body, msg] of cases) {
      const r = await post(hub, body);
      expect(r.statusCode, String(body).slice(0, 40)).toBe(400);
      expect(r.json().message).toMatch(msg);
    }
  });

  it('answers 400 naming the part that is wrong to bad path parameters and queries, never 500', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const admin = bearer(hub.token('admin'));
    const cases: [string, RegExp][] = [
      [paths.vesselManifest('ship-a', 'sms', '!'), /^version: must be APP@VERSION/],
      [`${paths.vessel('ship-a')}/releases/sms@!`, /^version: /],
      [paths.vesselPack('ship-a', 'not-hex'), /^id: /],
      [paths.root(0), /^version: /],
      [paths.vesselLogs('ship-a', { limit: 0 }), /^limit: /],
      [`${paths.vesselEvents('ship-a')}?surprise=1`, /^query: unsupported key "surprise"/],
      [paths.vesselMetrics('ship-a', { name: 'Bad Name' }), /^name: /],
      [paths.nextSequence('Not An App'), /^app: /],
      [paths.vesselDesired('ship-a', { with: 'everything' as 'manifest' }), /^with: /],
    ];
    for (const [url, message] of cases) {
      const res = await hub.app.inject({ url, headers: admin });
      expect(res.statusCode, url).toBe(400);
      expect(res.json(), url).toEqual({ error: 'bad_request', message: expect.stringMatching(message) });
    }
    // A vessel asking about another vessel learns nothing, however it spells the name.
    const other = paths.vesselDesired('Not_A_Name');
    expect((await hub.app.inject({ url: other, headers: a.sign('GET', other).headers })).statusCode).toBe(404);
  });

  it('survives a fuzz run of random bodies on every route without a 500', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a');
    const routes = documentedRoutes(await openApiOf(hub)).filter((r) => r.method !== 'GET');
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const fragments = [
      '{',
      '}',
      '[',
      ']',
      '"',
      ':',
      ',',
      'null',
      '1e999',
      '-0',
      '"\\u0000"',
      '{"name":',
      'true',
      '\u0000',
      '💥',
      '9007199254740993',
    ];
    for (let i = 0; i < 300; i++) {
      const r = routes[Math.floor(rnd() * routes.length)]!;
      const body =
        rnd() < 0.3
          ? randomBytes(Math.floor(rnd() * 200))
          : Array.from({ length: Math.floor(rnd() * 30) }, () => fragments[Math.floor(rnd() * fragments.length)]).join(
              '',
            );
      const headers = rnd() < 0.5 ? bearer(hub.token('admin')) : a.sign(r.method, r.url, undefined).headers;
      const res = await hub.app.inject({
        method: r.method as 'POST',
        url: r.url,
        headers: { ...headers, 'content-type': 'application/json' },
        payload: body,
      });
      expect(res.statusCode, `${r.method} ${r.url}`).toBeLessThan(500);
    }
    expect((await hub.app.inject('/health')).statusCode).toBe(200);
  });

  it('closes a connection whose headers drip in slower than the headers timeout', async () => {
    const hub = await startHub({
      limits: { HEADERS_TIMEOUT_MS: 1_000, REQUEST_TIMEOUT_MS: 2_000, TIMEOUT_CHECK_INTERVAL_MS: 200 },
    });
    const url = new URL(await hub.listen());
    const socket = connect(Number(url.port), '127.0.0.1');
    const closed = new Promise<{ ms: number; data: string }>((resolve) => {
      const t0 = Date.now();
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('close', () => resolve({ ms: Date.now() - t0, data }));
    });
    socket.write('GET /health HTTP/1.1\r\n');
    const drip = setInterval(() => socket.writable && socket.write('X-Slow: a\r\n'), 300);
    const { ms, data } = await closed;
    clearInterval(drip);
    expect(ms).toBeLessThan(5_000);
    expect(data).toMatch(/^HTTP\/1.1 408/);
  });

  it('caps concurrent connections from one address', async () => {
    const hub = await startHub({ limits: { MAX_CONNECTIONS_PER_ADDRESS: 4 } });
    const url = new URL(await hub.listen());
    const sockets: Socket[] = [];
    const states = await Promise.all(
      Array.from({ length: 6 }, () => {
        const s = connect(Number(url.port), '127.0.0.1');
        sockets.push(s);
        return new Promise<string>((resolve) => {
          s.on('close', () => resolve('closed'));
          setTimeout(() => resolve('open'), 500);
        });
      }),
    );
    for (const s of sockets) s.destroy();
    expect(states.filter((x) => x === 'open')).toHaveLength(4);
    expect(states.filter((x) => x === 'closed')).toHaveLength(2);
  });
});

describe('hub: root documents', () => {
  it('accepts the next root from an admin and refuses a skip, a stale one or a weaker role', async () => {
    const hub = await startHub();
    const push = (bytes: Buffer, token = hub.token('admin')) =>
      hub.app.inject({
        method: 'PUT',
        url: paths.roots(),
        headers: { ...bearer(token), 'content-type': 'application/vnd.tender.envelope+json' },
        payload: bytes,
      });
    const v2 = signedRoot(rootPayloadFor(2, hub.keys), hub.keys.root);
    expect((await push(v2, hub.token('operator'))).statusCode).toBe(403);
    expect((await push(signedRoot(rootPayloadFor(3, hub.keys), hub.keys.root))).json().message).toMatch(
      /root v3 offered where v2 is next/,
    );
    const stranger = makeKeys();
    expect((await push(signedRoot(rootPayloadFor(2, stranger), stranger.root))).json().message).toMatch(
      /root v1 \(old keys\) threshold not met/,
    );
    const ok = await push(v2);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().version).toBe(2);
    expect((await push(hub.rootBytes)).statusCode).toBe(409);
    const served = await hub.app.inject({ url: paths.root(2), headers: bearer(hub.token('viewer')) });
    expect(served.rawPayload).toEqual(v2);
  });
});

describe('hub: status page', () => {
  it('asks for a token, then lists each vessel with its group, enrolment, last contact and release', async () => {
    const hub = await startHub();
    const a = await enrolVessel(hub, 'ship-a', ['north']);
    const url = paths.vesselDesired('ship-a');
    await hub.app.inject({ url, headers: a.sign('GET', url).headers });
    await hub.app.inject({
      method: 'POST',
      url: paths.vessels(),
      headers: bearer(hub.token('operator')),
      payload: { name: 'ship-<b>' },
    });
    const anon = await hub.app.inject('/');
    expect(anon.statusCode).toBe(401);
    expect(anon.body).toMatch(/Paste an ops token/);
    // Never through a URL: the token in a link is refused and no session is made.
    const inUrl = await hub.app.inject(`/login?token=${hub.token('viewer')}`);
    expect(inUrl.statusCode).toBe(400);
    expect(inUrl.headers['set-cookie']).toBeUndefined();
    const login = await hub.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${encodeURIComponent(hub.token('viewer'))}`,
    });
    expect(login.statusCode).toBe(303);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    expect(String(login.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict/);
    const page = await hub.app.inject({ url: '/', headers: { cookie } });
    expect(page.statusCode).toBe(200);
    const row = /<tr data-vessel="ship-a"[^>]*>([\s\S]*?)<\/tr>/.exec(page.body)![1]!;
    expect(row).toMatch(/north/);
    expect(row).toMatch(/\d s ago/);
    expect(row).toMatch(/none/);
    await hub.app.inject({
      method: 'POST',
      url: paths.vessels(),
      headers: bearer(hub.token('operator')),
      payload: { name: 'ship-waiting' },
    });
    const again = await hub.app.inject({ url: '/', headers: { cookie } });
    expect(/<tr data-vessel="ship-waiting"[^>]*>([\s\S]*?)<\/tr>/.exec(again.body)![1]).toMatch(/awaiting enrolment/);
    expect((await hub.app.inject({ url: '/vessels/ship-a', headers: { cookie } })).body).toMatch(/ship-a/);
    expect((await hub.app.inject({ url: '/', headers: { cookie: 'tender_session=tnd_bad' } })).statusCode).toBe(401);
  });
});
