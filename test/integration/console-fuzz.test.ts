import { connect } from 'node:net';
import { prng } from '../helpers/prng.js';
import { describe, expect, it } from 'vitest';
import { CONSOLE_PASSWORD, enrolVessel, startShore } from '../helpers/fleet.js';
import { eventually } from '../helpers/proc.js';
import { unique } from '../helpers/names.js';

/**
 * Fuzz of the crew console of a real agent process (issue 10, Done when: the agent's console): about
 * 1,500 malformed requests from a seeded generator. Without the password every one is 401; with it, a
 * form post with a forged CSRF token is 403, a body that does not parse or is too large 400/413, a bundle
 * of random bytes is refused; no answer is a 5xx, the agent keeps answering, and nothing changed on board
 * (no release staged, no hold, the same status). Reproduce with TENDER_FUZZ_SEED=N.
 */
const SEED = Number(process.env.TENDER_FUZZ_SEED ?? 20261203);
const REQUESTS = 1500;
// Bounded in time as well as in count: a slow machine sends fewer, never waits longer.
const BUDGET_MS = 40_000;

const ACTIONS = ['/rollback', '/resume', '/apply'];
const PATHS = ['/', '/api/status', ...ACTIONS, ...ACTIONS.map((p) => `/api${p}`), '/upload', '/api/bundle'];
const JUNK_PATHS = ['/nope', '/api/', '/%00', '/..%2f..%2fetc/passwd', `/${'a'.repeat(5000)}`, '/api/status?x=%zz'];
const BAD_JSON = ['{', 'null', '[]', '"x"', '42', '{"release": {"$gt": ""}', '\u0000', '{"a":1}'.repeat(800)];

interface Shot {
  kind: 'no-auth' | 'wrong-auth' | 'forged-csrf' | 'bad-json' | 'junk-bundle' | 'get';
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

function shots(rng: ReturnType<typeof prng>, auth: string): Shot[] {
  const out: Shot[] = [];
  const wrong = [
    `Basic ${Buffer.from('crew:not-the-password').toString('base64')}`,
    'Basic ###',
    'Basic ',
    'Bearer x',
    `Basic ${Buffer.from(`crew:${CONSOLE_PASSWORD}x`).toString('base64')}`,
  ];
  for (let i = 0; i < REQUESTS; i++) {
    const r = rng.int(6);
    const path = rng.int(5) === 0 ? rng.pick(JUNK_PATHS) : rng.pick(PATHS);
    const method = rng.pick(['GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH']);
    const body = method === 'GET' ? undefined : rng.bytes(rng.int(300));
    if (r === 0) out.push({ kind: 'no-auth', method, path, headers: {}, body });
    else if (r === 1) out.push({ kind: 'wrong-auth', method, path, headers: { authorization: rng.pick(wrong) }, body });
    else if (r === 2)
      out.push({
        kind: 'forged-csrf',
        method: 'POST',
        path: rng.pick(ACTIONS),
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(`csrf=${rng.pick(['', 'x', '0'.repeat(64), '%ff', 'csrf'])}&release=${rng.int(9)}.0.0`),
      });
    else if (r === 3)
      out.push({
        kind: 'bad-json',
        method: 'POST',
        path: `/api${rng.pick(ACTIONS)}`,
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: Buffer.from(rng.pick(BAD_JSON)),
      });
    else if (r === 4)
      out.push({
        kind: 'junk-bundle',
        method: 'POST',
        path: '/api/bundle',
        headers: { authorization: auth, 'content-type': 'application/octet-stream' },
        body: rng.bytes(rng.int(20_000)),
      });
    else
      out.push({
        kind: 'get',
        method: 'GET',
        path: rng.pick([...PATHS, ...JUNK_PATHS]),
        headers: { authorization: auth, range: rng.pick(['bytes=0-', 'bytes=-1', 'bytes=x', '']) },
      });
  }
  return out;
}

// What each kind may be answered. Anything else (and any 5xx) fails the test.
const ALLOWED: Record<Shot['kind'], number[]> = {
  'no-auth': [401],
  'wrong-auth': [401],
  'forged-csrf': [403],
  'bad-json': [400, 413],
  'junk-bundle': [400, 409, 413],
  get: [200, 400, 404],
};

/** One request on its own socket (so a malformed one cannot poison the next), raw to keep paths as given. */
function raw(port: number, s: Shot): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const head = [`${s.method} ${s.path} HTTP/1.1`, 'host: console', 'connection: close'];
    for (const [k, v] of Object.entries(s.headers)) head.push(`${k}: ${v}`);
    if (s.body) head.push(`content-length: ${s.body.byteLength}`);
    sock.on('error', reject);
    let got = '';
    sock.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m) {
        resolve(Number(m[1]));
        sock.destroy();
      }
    });
    sock.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)));
    sock.setTimeout(20_000, () => sock.destroy(new Error(`no answer to ${s.method} ${s.path.slice(0, 60)}`)));
    sock.write(`${head.join('\r\n')}\r\n\r\n`);
    if (s.body) sock.write(s.body);
  });
}

describe('crew console: fuzz', () => {
  it('answers malformed requests below 500, by their kind, and changes nothing on board', async () => {
    const shore = await startShore();
    const v = await enrolVessel(shore, unique('fuzz-ship'));
    v.startAgent();
    await v.agent!.waitFor((l) => l.includes('crew console listening'), 60_000);
    await eventually(async () => (await v.status()).link.state === 'up', 60_000);
    const port = Number(new URL(v.consoleUrl).port);
    const auth = `Basic ${Buffer.from(`crew:${CONSOLE_PASSWORD}`).toString('base64')}`;
    const before = await v.status();
    const rng = prng(SEED);
    const t0 = Date.now();
    const wrong: string[] = [];
    let sent = 0;
    for (const s of shots(rng, auth)) {
      if (Date.now() - t0 > BUDGET_MS) break;
      const code = await raw(port, s);
      sent++;
      if (!ALLOWED[s.kind].includes(code))
        wrong.push(`${s.kind} ${s.method} ${s.path.slice(0, 60)} -> ${code} (seed ${SEED}, request ${sent})`);
    }
    expect(sent).toBeGreaterThan(200);
    expect(wrong.slice(0, 20), `${wrong.length} of ${sent} answered out of place`).toEqual([]);
    // Still answering, and nothing on board moved.
    const ok = await fetch(`${v.consoleUrl}/api/status`, { headers: { authorization: auth } });
    expect(ok.status).toBe(200);
    const after = await v.status();
    expect(after.release).toEqual(before.release);
    expect(after.lastResult ?? null).toEqual(before.lastResult ?? null);
    expect(v.agent!.lines.filter((l) => l.includes('console request failed'))).toEqual([]);
    console.log(`console fuzz: ${sent} requests in ${((Date.now() - t0) / 1000).toFixed(1)} s, seed ${SEED}`);
  }, 180_000);
});
