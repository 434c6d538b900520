import { describe, expect, it } from 'vitest';
import { enrolVessel, startHub, type TestHub } from '../helpers/hub.js';
import { signedManifest } from '../helpers/fake-engine.js';
import { paths } from '../../shared/protocol/routes.js';
import type { VesselStatusReport } from '../../shared/protocol/bodies.js';
import { DEFAULT_RULES } from '../../hub/rollout/waves.js';

/** The status page on a real hub (SQLite, fastify inject): sign-in, the fleet list, the vessel and rollout pages. */

const MIN = 60_000;
const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function signIn(hub: TestHub, role: 'viewer' | 'operator' = 'viewer'): Promise<string> {
  const r = await hub.app.inject({
    method: 'POST',
    url: '/login',
    headers: FORM,
    payload: form({ token: hub.token(role) }),
  });
  expect(r.statusCode).toBe(303);
  return String(r.headers['set-cookie']).split(';')[0]!;
}
const rowOf = (body: string, name: string) =>
  new RegExp(`<tr data-vessel="${name}"[^>]*>([\\s\\S]*?)</tr>`).exec(body)?.[1] ?? '';

const report = (over: Partial<VesselStatusReport>): VesselStatusReport => ({
  agentVersion: '0.1.0',
  current: '1.0.0',
  previous: null,
  pending: null,
  held: false,
  rootVersion: 1,
  backlog: 0,
  services: [{ name: 'portal', app: 'sms', release: '1.0.0', state: 'running' }],
  bootId: 'boot',
  reportedAt: new Date().toISOString(),
  apps: [{ app: 'sms', live: '1.0.0', desired: '1.0.0', pending: null, held: false }],
  hold: null,
  link: {
    state: 'up',
    lastOkAt: null,
    lastError: null,
    rttMs: 80,
    bytesUp24h: 2048,
    bytesDown24h: 1024,
    requests24h: 9,
    failures24h: 0,
  },
  ...over,
});

describe('status page', () => {
  it('signs in by form only (a token in a URL is refused); sessions expire and end with their token', async () => {
    let now = Date.now();
    const hub = await startHub({ now: () => now });
    expect((await hub.app.inject(`/login?token=${hub.token('viewer')}`)).statusCode).toBe(400);
    expect((await hub.app.inject('/login?token=')).headers['set-cookie']).toBeUndefined();
    const bad = await hub.app.inject({
      method: 'POST',
      url: '/login',
      headers: FORM,
      payload: form({ token: 'tnd_x.y' }),
    });
    expect(bad.statusCode).toBe(401);
    const login = await hub.app.inject({
      method: 'POST',
      url: '/login',
      headers: FORM,
      payload: form({ token: hub.token('viewer') }),
    });
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    // The cookie is a session secret, not the token.
    expect(setCookie).not.toContain(hub.token('viewer'));
    const cookie = setCookie.split(';')[0]!;
    expect((await hub.app.inject({ url: '/', headers: { cookie } })).statusCode).toBe(200);
    // Behind TLS (a proxy saying so is not enough: the hub's own protocol), the cookie is Secure.
    now += 13 * 3600_000;
    expect((await hub.app.inject({ url: '/', headers: { cookie } })).statusCode).toBe(401);
    // Signing out needs the CSRF value; a revoked token ends its sessions at once.
    const c2 = await signIn(hub);
    const page = (await hub.app.inject({ url: '/', headers: { cookie: c2 } })).body;
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const noCsrf = await hub.app.inject({
      method: 'POST',
      url: '/logout',
      headers: { ...FORM, cookie: c2 },
      payload: '',
    });
    expect(noCsrf.statusCode).toBe(403);
    const out = await hub.app.inject({
      method: 'POST',
      url: '/logout',
      headers: { ...FORM, cookie: c2 },
      payload: form({ csrf }),
    });
    expect(out.statusCode).toBe(303);
    expect((await hub.app.inject({ url: '/', headers: { cookie: c2 } })).statusCode).toBe(401);
    const c3 = await signIn(hub);
    const viewerId = /^tnd_([0-9a-f]{16})_/.exec(hub.token('viewer'))![1]!;
    await hub.deps.store.opsTokens.revoke(viewerId, now);
    expect((await hub.app.inject({ url: '/', headers: { cookie: c3 } })).statusCode).toBe(401);
  });

  it('pages, searches and filters the fleet, counts per state, and answers a bad query with 400', async () => {
    const hub = await startHub();
    const now = hub.deps.now();
    const s = hub.deps.store;
    for (let i = 0; i < 120; i++) {
      const v = await s.vessels.create(
        { name: `ship-${String(i).padStart(3, '0')}`, groups: [i % 3 ? 'north' : 'south'] },
        now,
      );
      if (i < 100) await s.vessels.touch(v.id, '127.0.0.1', i < 90 ? now - MIN : now - 60 * MIN);
    }
    const cookie = await signIn(hub);
    const get = (url: string) => hub.app.inject({ url, headers: { cookie } });
    const first = await get('/');
    expect(first.statusCode).toBe(200);
    expect(first.body.match(/<tr data-vessel=/g)).toHaveLength(50);
    expect(first.body).toMatch(/Vessels 1–50 of 120 · page 1 of 3/);
    expect(first.body).toMatch(/<b>120<\/b> vessels/);
    expect(first.body).toMatch(/<b class="bad">10<\/b> offline/);
    expect(first.body).toMatch(/<b>20<\/b> never heard from/);
    const third = await get('/?page=3');
    expect(third.body.match(/<tr data-vessel=/g)).toHaveLength(20);
    expect(rowOf(third.body, 'ship-119')).toBeTruthy();
    expect((await get('/?q=ship-05')).body.match(/<tr data-vessel=/g)).toHaveLength(10);
    const south = await get('/?group=south&per=100');
    expect(south.body.match(/<tr data-vessel=/g)).toHaveLength(40);
    const offline = await get('/?state=offline');
    expect(offline.body.match(/<tr data-vessel=/g)).toHaveLength(10);
    expect(offline.body).toContain('<tr data-vessel="ship-095" data-contact="offline">');
    const sorted = await get('/?sort=name&dir=desc&per=10');
    expect(sorted.body.indexOf('ship-119')).toBeLessThan(sorted.body.indexOf('ship-118'));
    // An empty form field is no filter.
    expect((await get('/?q=&group=&state=&release=&rollout=')).statusCode).toBe(200);
    for (const url of [
      '/?color=red',
      '/?page=-1',
      '/?page=0',
      `/?q=${'x'.repeat(10_000)}`,
      '/?state=sunk',
      '/?per=9999',
      '/?sort=evil',
    ]) {
      const r = await get(url);
      expect(r.statusCode, url).toBe(400);
      expect(r.body).toMatch(/class="error"/);
    }
  });

  it('shows nothing green that is not: a missing service, no contact, an unseen target, a hold', async () => {
    const hub = await startHub();
    const ok = await enrolVessel(hub, 'ship-ok');
    const gone = await enrolVessel(hub, 'ship-gone');
    const held = await enrolVessel(hub, 'ship-held');
    await enrolVessel(hub, 'ship-silent');
    const post = async (v: typeof ok, r: VesselStatusReport) => {
      const url = paths.vesselStatus(v.name);
      const { headers, payload } = v.sign('POST', url, r);
      const res = await hub.app.inject({ method: 'POST', url, headers, payload });
      expect(res.statusCode, res.body).toBe(204);
    };
    await post(ok, report({}));
    await post(
      gone,
      report({
        services: [{ name: 'portal', app: 'sms', release: '1.0.0', state: 'missing', detail: 'no container' }],
      }),
    );
    await post(
      held,
      report({
        pending: '1.0.2',
        held: true,
        hold: { app: 'sms', sequence: 3 },
        apps: [
          { app: 'sms', live: '1.0.0', desired: '1.0.2', pending: { version: '1.0.2', state: 'held' }, held: true },
        ],
      }),
    );
    // A rollout to a vessel that never reported: the hub's target shows as pending.
    const m = signedManifest(hub.keys.release[0]!, { app: 'sms', version: '1.0.2', sequence: 3 });
    const rel = await hub.publish(m.bytes);
    await hub.rollout(rel, 'vessel:ship-silent');
    await hub.rollout(rel, 'vessel:ship-held');
    const cookie = await signIn(hub);
    const page = (await hub.app.inject({ url: '/', headers: { cookie } })).body;
    expect(rowOf(page, 'ship-ok')).toMatch(/class="ok">1 running/);
    expect(rowOf(page, 'ship-gone')).toMatch(/class="bad">portal missing/);
    expect(rowOf(page, 'ship-gone')).not.toMatch(/class="ok">\d+ running/);
    expect(rowOf(page, 'ship-held')).toMatch(/sms → 1.0.2 held by crew/);
    expect(rowOf(page, 'ship-silent')).toMatch(/sms → 1.0.2 <span class="mute">\(not yet seen by the vessel\)/);
    expect(rowOf(page, 'ship-ok')).toMatch(/80 ms · ↑2.0 KB ↓1.0 KB/);
    for (const [state, name] of [
      ['failing', 'ship-gone'],
      ['held', 'ship-held'],
      ['updating', 'ship-silent'],
    ]) {
      const f = (await hub.app.inject({ url: `/?state=${state}`, headers: { cookie } })).body;
      expect(f.match(/<tr data-vessel="([^"]+)"/g), state).toEqual([`<tr data-vessel="${name}"`]);
    }
    // The vessel page reads as facts, the raw report folded away.
    const vp = (await hub.app.inject({ url: '/vessels/ship-gone', headers: { cookie } })).body;
    expect(vp).toMatch(/<h2 id="s-svc">Services<\/h2><table>/);
    expect(vp).toMatch(/<td class="bad">missing<\/td>/);
    expect(vp).toMatch(/<details><summary>The last report as sent/);
    const vh = (await hub.app.inject({ url: '/vessels/ship-held', headers: { cookie } })).body;
    expect(vh).toMatch(/holding sms \(sequence 3\)/);
    expect(
      (await hub.app.inject({ url: `/vessels/ship-ok?grep=${'x'.repeat(300)}`, headers: { cookie } })).statusCode,
    ).toBe(400);
    expect((await hub.app.inject({ url: '/vessels/ship-ok?grep=a%00b', headers: { cookie } })).statusCode).toBe(400);
    expect((await hub.app.inject({ url: '/vessels/ship-ok?grep=boot', headers: { cookie } })).statusCode).toBe(200);
    // Not heard from for 20 minutes: its last report is shown as that, never green.
    await hub.deps.store.vessels.touch(ok.id, '127.0.0.1', hub.deps.now() - 20 * MIN);
    const later = (await hub.app.inject({ url: '/', headers: { cookie } })).body;
    expect(rowOf(later, 'ship-ok')).toMatch(/class="bad">offline · <time/);
    expect(rowOf(later, 'ship-ok')).toMatch(/class="mute">1 running when last heard/);
    expect(rowOf(later, 'ship-ok')).not.toMatch(/class="ok"/);
  });

  it('pauses, resumes and aborts a rollout from its page: operators only, with the CSRF value', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-a');
    const m = signedManifest(hub.keys.release[0]!, { app: 'sms', version: '2.0.0', sequence: 1 });
    const { id } = await hub.rollout(await hub.publish(m.bytes), 'all');
    const viewer = await signIn(hub, 'viewer');
    const vpage = (await hub.app.inject({ url: `/rollouts/${id}`, headers: { cookie: viewer } })).body;
    expect(vpage).toMatch(/need the operator role/);
    const vcsrf = /name="csrf" value="([^"]+)"/.exec(vpage)![1]!;
    const denied = await hub.app.inject({
      method: 'POST',
      url: `/rollouts/${id}/pause`,
      headers: { ...FORM, cookie: viewer },
      payload: form({ csrf: vcsrf }),
    });
    expect(denied.statusCode).toBe(403);
    const op = await signIn(hub, 'operator');
    const page = (await hub.app.inject({ url: `/rollouts/${id}`, headers: { cookie: op } })).body;
    expect(page).toMatch(/data-state="active"/);
    expect(page).toMatch(/Wave 1 · current<\/th><td>1 pending/);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const post = (verb: string, payload: string, extra: Record<string, string> = {}) =>
      hub.app.inject({
        method: 'POST',
        url: `/rollouts/${id}/${verb}`,
        headers: { ...FORM, cookie: op, ...extra },
        payload,
      });
    expect((await post('pause', '')).statusCode).toBe(403);
    expect((await post('pause', form({ csrf: 'wrong' }))).statusCode).toBe(403);
    expect((await post('pause', form({ csrf }), { origin: 'https://evil.example' })).statusCode).toBe(403);
    expect((await hub.deps.store.rollouts.get(id))!.state).toBe('active');
    expect((await post('pause', form({ csrf }))).statusCode).toBe(303);
    expect((await hub.deps.store.rollouts.get(id))!.state).toBe('paused');
    expect((await post('pause', form({ csrf }))).statusCode).toBe(409);
    expect((await post('resume', form({ csrf }))).statusCode).toBe(303);
    expect((await post('abort', form({ csrf }))).statusCode).toBe(303);
    const after = (await hub.app.inject({ url: `/rollouts/${id}`, headers: { cookie: op } })).body;
    expect(after).toMatch(/data-state="aborted"/);
    expect((await hub.deps.store.audit.list({ limit: 100 })).map((a) => a.action)).toEqual(
      expect.arrayContaining(['rollout.pause', 'rollout.resume', 'rollout.abort']),
    );
    // Through the rollout engine, as the API goes (serialised with its timer), each audited as from the page.
    const fromPage = (await hub.deps.store.audit.list({ limit: 100 })).filter((a) => a.action.startsWith('rollout.'));
    expect(fromPage.map((a) => a.detail)).toEqual(expect.arrayContaining([{ id, via: 'page' }]));
    const list = (await hub.app.inject({ url: '/rollouts', headers: { cookie: op } })).body;
    expect(list).toMatch(new RegExp(`href="/rollouts/${id}">#${id}</a></th><td>sms@2.0.0`));
    expect((await hub.app.inject({ url: '/rollouts/abc', headers: { cookie: op } })).statusCode).toBe(400);
  });

  it("pages a rollout's vessels and filters them by outcome; a bad query is a 400", async () => {
    const hub = await startHub();
    const now = hub.deps.now();
    for (let i = 0; i < 250; i++)
      await hub.deps.store.vessels.create({ name: `ship-${String(i).padStart(3, '0')}`, groups: ['fleet'] }, now);
    const m = signedManifest(hub.keys.release[0]!, { app: 'sms', version: '2.0.0', sequence: 1 });
    const release = await hub.publish(m.bytes);
    const { id } = await hub.deps.store.rollouts.start(
      { releaseId: release.id, target: 'all', createdBy: 'test', rules: { ...DEFAULT_RULES, waves: [10, 100] } },
      now,
    );
    const cookie = await signIn(hub);
    const get = (q: string) => hub.app.inject({ url: `/rollouts/${id}${q}`, headers: { cookie } });
    const rows = (body: string) => body.match(/<a href="\/vessels\/ship-\d{3}">/g)?.length ?? 0;
    const first = (await get('')).body;
    expect(rows(first)).toBe(100);
    expect(first).toContain('Vessels 1–100 of 250 · page 1 of 3');
    expect(first).toMatch(
      /<b>all 250<\/b> · <a href="[^"]*outcome=pending">25 pending<\/a> · <a href="[^"]*">225 not started/,
    );
    const last = (await get('?page=3')).body;
    expect(rows(last)).toBe(50);
    expect(last).toContain('Vessels 201–250 of 250 · page 3 of 3');
    const pending = (await get('?outcome=pending')).body;
    expect(rows(pending)).toBe(25);
    expect(pending).not.toContain('page 1 of');
    expect(rows((await get('?outcome=not+started&page=2')).body)).toBe(100);
    expect(rows((await get('?outcome=failed')).body)).toBe(0);
    for (const bad of ['?page=0', '?page=-1', '?outcome=bogus', '?x=1', `?page=${'9'.repeat(40)}`]) {
      const r = await get(bad);
      expect(r.statusCode, bad).toBe(400);
      expect(r.body).toContain('Bad query');
    }
  });
});
