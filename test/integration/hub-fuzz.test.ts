import { brotliCompressSync, gzipSync } from 'node:zlib';
import { prng, type Rng } from '../helpers/prng.js';
import { describe, expect, it } from 'vitest';
import { ROUTES, type RouteDef } from '../../shared/protocol/routes.js';
import { HEADER, MEDIA } from '../../shared/protocol/http.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { enrolVessel, startHub, type TestHub } from '../helpers/hub.js';

/**
 * Fuzz of the hub's request parsing and validation (issue 10, ATTACKS.md 29–33, 43): a few thousand
 * malformed requests, from a seeded generator, to every route of the catalogue — with no credential, an
 * admin token, and a genuine vessel signature over the malformed body — and every answer must be below
 * 500, the hub must keep answering, and nothing may be stored. Reproduce a failure with the seed it
 * prints: TENDER_FUZZ_SEED=N npx vitest run test/integration/hub-fuzz.test.ts.
 */

const SEED = Number(process.env.TENDER_FUZZ_SEED ?? 20261202);
const REQUESTS = Number(process.env.TENDER_FUZZ_REQUESTS ?? 2500);
// Bounded in time as well as in count: a slow machine sends fewer, never waits longer.
const BUDGET_MS = 90_000;

const NASTY_STRINGS = [
  '',
  ' ',
  '..',
  '../../etc/passwd',
  '%2e%2e%2f%2e%2e',
  "' OR 1=1--",
  '"; DROP TABLE vessels; --',
  'a'.repeat(300),
  'x'.repeat(5000),
  '\u0000',
  '%00',
  '%ZZ',
  '%',
  'ship-a%0d%0aset-cookie:x',
  '😀',
  '\uFEFFship',
  'ship a',
  'SHIP',
  '-1',
  '1e400',
  'NaN',
  '9007199254740993',
  'web@',
  '@1.0.0',
  'web@1.0.0',
  'web@!',
  'v_0123456789abcdef',
  'f'.repeat(16),
  'f'.repeat(64),
  '*',
  'MATCH',
  'NEAR(a b)',
  '"unterminated',
];

function fuzzString(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return r.pick(NASTY_STRINGS);
    case 1:
      return encodeURIComponent(r.pick(NASTY_STRINGS));
    case 2:
      return r.bytes(1 + r.int(20)).toString('latin1');
    default:
      return `${r.pick(NASTY_STRINGS)}${r.int(1000)}`;
  }
}

function fuzzJsonValue(r: Rng, depth = 0): unknown {
  switch (depth > 3 ? r.int(5) : r.int(8)) {
    case 0:
      return null;
    case 1:
      return r.pick([0, -1, 1.5, 2 ** 53 + 2, -(2 ** 63), 1e308, Number.MAX_SAFE_INTEGER]);
    case 2:
      return fuzzString(r);
    case 3:
      return r.next() < 0.5;
    case 4:
      return r.pick(['ship-a', 'web@1.0.0', 'admin', 'vessel:ship-a', 'all']);
    case 5:
      return Array.from({ length: r.int(5) }, () => fuzzJsonValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const keys = ['name', 'role', 'groups', 'offline', 'ttlSeconds', 'release', 'digests', 'target', 'agentVersion'];
      for (let i = r.int(5); i > 0; i--) o[r.next() < 0.7 ? r.pick(keys) : fuzzString(r)] = fuzzJsonValue(r, depth + 1);
      // An unknown key: every body schema is strict, so this object can never be a valid request.
      o['\u0000fuzz'] = 1;
      return o;
    }
  }
}

// Made once: the bombs and the deep nesting cost more to build than to send.
const SPACES = Buffer.alloc(8 << 20, 0x20);
const BOMBS = [gzipSync(SPACES), brotliCompressSync(SPACES)];
const DEEP = Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);

/** A body that no route accepts: malformed, mis-typed, oversized in structure, or not what it claims. */
function fuzzBody(r: Rng): { payload: Buffer; contentType?: string; encoding?: string } {
  const json = MEDIA.json;
  switch (r.int(12)) {
    case 0:
      return { payload: Buffer.from(JSON.stringify(fuzzJsonValue(r))), contentType: json };
    case 1: {
      const full = JSON.stringify({ name: 'ship-z', groups: ['a'], x: fuzzJsonValue(r) });
      return { payload: Buffer.from(full.slice(0, r.int(full.length))), contentType: json };
    }
    case 2:
      return { payload: DEEP, contentType: json };
    case 3:
      return { payload: Buffer.from('{"ttlSeconds":1e400,"name":"x","role":"viewer","\\u0000":1}'), contentType: json };
    case 4:
      return { payload: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), contentType: json };
    case 5:
      return { payload: Buffer.from('\uFEFF{"name":"ship-bom","\\u0000":1}'), contentType: json };
    case 6:
      return { payload: Buffer.from('{"name":"a","name":"b","\\u0000":1}'), contentType: json };
    case 7:
      return { payload: r.bytes(r.int(4096)), contentType: r.pick(Object.values(MEDIA)) };
    case 8:
      return { payload: r.bytes(64), contentType: r.pick(Object.values(MEDIA)), encoding: r.pick(['br', 'gzip']) };
    case 9:
      // A small compressed body that inflates to 8 MB of nothing useful.
      return {
        payload: r.pick(BOMBS),
        contentType: r.pick([MEDIA.telemetry, json, MEDIA.envelope]),
        encoding: r.pick(['br', 'gzip', 'deflate', 'zstd', 'br, gzip']),
      };
    case 10:
      return {
        payload: Buffer.from(JSON.stringify(fuzzJsonValue(r))),
        contentType: r.pick([
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/json; charset=latin1',
        ]),
      };
    default:
      // Not an empty body: some routes take none, and an empty body is a valid request to them.
      return { payload: Buffer.from(r.pick(['[]', '"x"', '0', 'null', 'true'])), contentType: json };
  }
}

function fuzzPath(r: Rng, def: RouteDef, vessel: string): string {
  return def.url.replace(/:([a-z]+)/g, (_, p: string) => {
    if (p === 'name' && r.next() < 0.5) return vessel;
    if (r.next() < 0.15) return p === 'version' || p === 'release' ? 'web@1.0.0' : p === 'id' ? 'f'.repeat(32) : '1';
    return encodeURIComponent(fuzzString(r)).replace(/%25/g, r.next() < 0.3 ? '%' : '%25');
  });
}

function fuzzQuery(r: Rng): string {
  if (r.next() < 0.4) return '';
  const keys = ['limit', 'offset', 'group', 'since', 'until', 'grep', 'service', 'name', 'after', 'for', 'with', 'app'];
  const parts = Array.from({ length: 1 + r.int(4) }, () => `${r.pick(keys)}=${encodeURIComponent(fuzzString(r))}`);
  if (r.next() < 0.2) parts.push(r.pick(['limit=1&limit=2', 'limit', '=', '&&', 'since=%', 'grep=%00']));
  return `?${parts.join('&')}`;
}

const RANGES = [
  'bytes=10-5',
  'bytes=-0',
  'bytes=0-0,5-9',
  'bytes=99999999999999999999-',
  'bytes=x-y',
  'bytes=',
  'items=0-1',
  'bytes=-99999999999',
  'bytes=5-',
  'bytes=0--1',
];

/** Counts of what the hub stores: a refused request must change none of them. */
async function stored(hub: TestHub) {
  const s = hub.deps.store;
  return {
    vessels: (await s.vessels.list({ limit: 1000, offset: 0 })).map((v) => `${v.name}:${v.revokedAt}:${v.publicKey}`),
    releases: (await s.releases.list({ limit: 1000 })).length,
    tokens: (await s.opsTokens.list()).map((t) => `${t.id}:${t.revokedAt}`),
    audit: (await s.audit.list({ limit: 10_000 })).length,
    roots: (await s.roots.list()).length,
  };
}

describe('hub: fuzzed requests to every route never answer 5xx, never crash, store nothing', () => {
  it(`survives ${REQUESTS} malformed requests (seed ${SEED})`, { timeout: BUDGET_MS + 60_000 }, async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-f');
    const before = await stored(hub);
    const r = prng(SEED);
    const routes = Object.values(ROUTES) as RouteDef[];
    const started = Date.now();
    const failures: string[] = [];
    let sent = 0;
    for (; sent < REQUESTS && Date.now() - started < BUDGET_MS; sent++) {
      const def = r.pick(routes);
      const method =
        r.next() < 0.9 ? def.method : r.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const);
      const url = fuzzPath(r, def, v.name) + fuzzQuery(r);
      const body = method === 'GET' && r.next() < 0.8 ? undefined : fuzzBody(r);
      const headers: Record<string, string> = {};
      const who = r.int(4);
      if (who === 0) headers.authorization = `Bearer ${hub.token('admin')}`;
      if (who === 1) Object.assign(headers, signVesselRequest(v.key, v.id, method, url, Date.now(), body?.payload));
      if (who === 2)
        headers.authorization = r.pick([
          'Bearer ',
          'Bearer tnd_0000000000000000_' + 'a'.repeat(43),
          `Tender-Vessel id=${v.id}, ts=${Date.now()}, sig=${'A'.repeat(86)}==`,
          'Basic YWRtaW46YWRtaW4=',
          fuzzString(r),
        ]);
      if (body?.contentType) headers['content-type'] = body.contentType;
      if (body?.encoding) headers['content-encoding'] = body.encoding;
      if (r.next() < 0.15) headers.range = r.pick(RANGES);
      if (r.next() < 0.1) headers['if-range'] = fuzzString(r);
      if (r.next() < 0.1) headers['if-none-match'] = fuzzString(r);
      if (r.next() < 0.05) headers[HEADER.bodyDigest] = fuzzString(r);
      // Header values as a client can send them at all (visible ASCII): the rest is the HTTP parser's job.
      for (const k of Object.keys(headers)) headers[k] = headers[k]!.replace(/[^\x20-\x7e]/g, '?');
      let res;
      try {
        res = await hub.app.inject({ method, url, headers, payload: body?.payload });
      } catch (err) {
        failures.push(`#${sent} ${method} ${url}: inject threw ${(err as Error).message}`);
        continue;
      }
      if (res.statusCode >= 500)
        failures.push(`#${sent} ${method} ${url} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
      else if (res.statusCode < 400 && method !== 'GET' && method !== 'OPTIONS')
        failures.push(`#${sent} ${method} ${url} accepted (${res.statusCode}) a malformed body`);
    }
    expect(failures, `seed ${SEED}: ${failures.slice(0, 10).join('\n')}`).toEqual([]);
    console.log(`hub fuzz: ${sent} requests in ${Date.now() - started} ms (seed ${SEED})`);
    expect(sent).toBeGreaterThanOrEqual(Math.min(REQUESTS, 500));
    // Still up, and nothing a refused request could have written is there.
    expect((await hub.app.inject({ url: '/health' })).statusCode).toBe(200);
    const own = v.sign('GET', `/api/v1/vessels/${v.name}/desired`);
    expect((await hub.app.inject({ url: `/api/v1/vessels/${v.name}/desired`, headers: own.headers })).statusCode).toBe(
      200,
    );
    expect(await stored(hub)).toEqual(before);
  });
});
