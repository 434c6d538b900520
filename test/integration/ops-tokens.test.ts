import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../../shared/trust/keys.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { paths } from '../../shared/protocol/routes.js';
import { createOpsToken } from '../../hub/ops-tokens.js';
import { enrolVessel, startHub, type TestHub } from '../helpers/hub.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function call(hub: TestHub, token: string, method: 'GET' | 'POST', url: string, payload?: unknown) {
  return hub.app.inject({ method, url, headers: bearer(token), payload: payload as object | undefined });
}

describe('ops tokens expire, can be listed and revoked; the audit log can be read (ATTACKS.md 45)', () => {
  it('gives every new token an expiry and refuses it on every route after it', async () => {
    let clock = Date.now();
    const hub = await startHub({ now: () => clock });
    const made = await call(hub, hub.token('admin'), 'POST', paths.opsTokens(), {
      role: 'operator',
      name: 'ci',
      ttlSeconds: 3600,
    });
    expect(made.statusCode).toBe(201);
    const { token, expiresAt } = made.json();
    expect(Date.parse(expiresAt)).toBe(clock + 3600_000);
    // A token asked for without a lifetime still gets one (90 days): none lives for ever.
    const dflt = (await call(hub, hub.token('admin'), 'POST', paths.opsTokens(), { role: 'viewer', name: 'd' })).json();
    expect(Date.parse(dflt.expiresAt)).toBe(clock + 90 * 86400_000);
    for (const [method, url] of [
      ['GET', paths.vessels()],
      ['GET', paths.releases()],
      ['GET', paths.rollouts()],
      ['GET', paths.roots()],
    ] as const)
      expect((await call(hub, token, method, url)).statusCode, url).toBe(200);
    clock += 3600_000;
    for (const [method, url, body] of [
      ['GET', paths.vessels()],
      ['GET', paths.releases()],
      ['POST', paths.vessels(), { name: 'after-expiry' }],
      ['GET', paths.vessel('x')],
    ] as const) {
      const res = await call(hub, token, method, url, body);
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toEqual({ error: 'unauthorized', message: 'missing, invalid or expired credentials' });
    }
    expect(await hub.deps.store.vessels.getByName('after-expiry')).toBeUndefined();
    // The status page refuses it too.
    expect((await hub.app.inject({ url: '/', headers: bearer(token) })).statusCode).not.toBe(200);
  });

  it('refuses a lifetime out of bounds, and a token list or revoke by anyone but an admin', async () => {
    const hub = await startHub();
    for (const ttlSeconds of [0, 59, 3 * 365 * 86400, 1.5, -1, '60'])
      expect(
        (await call(hub, hub.token('admin'), 'POST', paths.opsTokens(), { role: 'viewer', name: 'x', ttlSeconds }))
          .statusCode,
        String(ttlSeconds),
      ).toBe(400);
    const id = (await hub.deps.store.opsTokens.list())[0]!.id;
    for (const role of ['viewer', 'operator'] as const) {
      expect((await call(hub, hub.token(role), 'GET', paths.opsTokens())).statusCode).toBe(403);
      expect((await call(hub, hub.token(role), 'POST', paths.opsTokenRevoke(id), {})).statusCode).toBe(403);
      expect((await call(hub, hub.token(role), 'GET', paths.audit())).statusCode).toBe(403);
    }
    expect((await hub.deps.store.opsTokens.get(id))!.revokedAt).toBeNull();
    for (const bad of ['nothex', '0123', `${'a'.repeat(16)}x`, "' OR 1=1--"])
      expect((await call(hub, hub.token('admin'), 'POST', paths.opsTokenRevoke(bad), {})).statusCode, bad).toBe(400);
    expect((await call(hub, hub.token('admin'), 'POST', paths.opsTokenRevoke('f'.repeat(16)), {})).statusCode).toBe(
      404,
    );
  });

  it('lists tokens without their secrets, revokes one at once, and audits both', async () => {
    const hub = await startHub();
    const admin = hub.token('admin');
    const made = (await call(hub, admin, 'POST', paths.opsTokens(), { role: 'operator', name: 'laptop' })).json();
    const list = await call(hub, admin, 'GET', paths.opsTokens());
    expect(list.statusCode).toBe(200);
    const row = list.json().tokens.find((t: { id: string }) => t.id === made.id);
    expect(row).toMatchObject({ role: 'operator', name: 'laptop', state: 'active', revokedAt: null });
    // tnd_<id>_<secret>: the secret is base64url and may itself hold '_' (or start with one).
    const secret = /^tnd_[0-9a-f]+_(.+)$/.exec(made.token)![1]!;
    expect(secret.length).toBeGreaterThan(20);
    expect(list.body).not.toContain(secret);
    expect(list.body).not.toMatch(/tokenHash|token_hash/);
    expect((await call(hub, made.token, 'GET', paths.vessels())).statusCode).toBe(200);
    const rev = await call(hub, admin, 'POST', paths.opsTokenRevoke(made.id), {});
    expect(rev.statusCode).toBe(200);
    expect(rev.json().state).toBe('revoked');
    expect((await call(hub, made.token, 'GET', paths.vessels())).statusCode).toBe(401);
    // Revoking twice is not an error and changes nothing.
    expect((await call(hub, admin, 'POST', paths.opsTokenRevoke(made.id), {})).json().state).toBe('revoked');
    const audit = (await call(hub, admin, 'GET', paths.audit({ limit: 1000 }))).json();
    const actions = audit.records.map((r: { action: string }) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['token.create', 'token.revoke']));
    const create = audit.records.find((r: { action: string }) => r.action === 'token.create');
    expect(create.actor).toMatch(/^ops:test-admin:[0-9a-f]{16}$/);
    expect(create.detail).toMatchObject({ id: made.id, role: 'operator', name: 'laptop' });
    expect(JSON.stringify(audit)).not.toContain(secret);
  });

  it('pages the audit log by id and filters it by time; bad queries are 400', async () => {
    let clock = Date.UTC(2030, 0, 1);
    const hub = await startHub({ now: () => clock });
    for (let i = 0; i < 7; i++) {
      clock += 1000;
      await call(hub, hub.token('operator'), 'POST', paths.vessels(), { name: `ship-${i}` });
    }
    const p1 = (await call(hub, hub.token('admin'), 'GET', paths.audit({ limit: 3 }))).json();
    expect(p1.records).toHaveLength(3);
    const p2 = (await call(hub, hub.token('admin'), 'GET', paths.audit({ limit: 3, after: p1.next }))).json();
    expect(p2.records[0].id).toBeGreaterThan(p1.records[2].id);
    const since = new Date(Date.UTC(2030, 0, 1) + 5000).toISOString();
    const late = (await call(hub, hub.token('admin'), 'GET', paths.audit({ since }))).json();
    expect(late.records.map((r: { detail: { vessel: string } }) => r.detail.vessel)).toEqual([
      'ship-4',
      'ship-5',
      'ship-6',
    ]);
    expect(late.next).toBeNull();
    for (const q of ['limit=0', 'limit=1001', 'after=-1', 'since=yesterday', 'after=1e400', 'limit=%00', 'x=1'])
      expect((await call(hub, hub.token('admin'), 'GET', `${paths.audit()}?${q}`)).statusCode, q).toBe(400);
  });

  it('tender token create|list|revoke and tender audit --export, against a listening hub', async () => {
    const hub = await startHub();
    const url = await hub.listen();
    const env = { TENDER_HUB: url, TENDER_TOKEN: hub.token('admin'), TENDER_CONFIG: join(tempDir('cli-'), 'none') };
    const created = await runCli(
      ['token', 'create', '--role', 'viewer', '--name', 'grafana', '--expires', '30d', '--json'],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout);
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(29 * 86400_000);
    const listed = await runCli(['token', 'list'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${t.id}\\s+viewer\\s+grafana\\s+active`));
    expect(listed.stdout).not.toContain(t.token);
    const revoked = await runCli(['token', 'revoke', t.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await runCli(['token', 'list', '--json'], env)).stdout).toContain('"revoked"');
    expect((await runCli(['vessel', 'list'], { ...env, TENDER_TOKEN: t.token })).code).not.toBe(0);
    const bad = await runCli(['token', 'create', '--role', 'god', '--name', 'x'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--role must be one of/);
    // The whole log, paged by the CLI, as a JSON file.
    for (let i = 0; i < 5; i++) await runCli(['vessel', 'add', `ship-${i}`], env);
    const file = join(tempDir('audit-'), 'audit.json');
    const exported = await runCli(['audit', '--export', file], env);
    expect(exported.code, exported.stderr).toBe(0);
    const all = JSON.parse(readFileSync(file, 'utf8')) as { action: string; actor: string }[];
    expect(all.map((r) => r.action)).toEqual([
      'token.create',
      'token.revoke',
      'vessel.add',
      'vessel.add',
      'vessel.add',
      'vessel.add',
      'vessel.add',
    ]);
    const shown = await runCli(['audit', '--since', '1h'], env);
    expect(shown.stdout).toMatch(/vessel\.add/);
  });
});

describe('re-keying an enrolled vessel is an explicit, audited admin step (ATTACKS.md 38)', () => {
  async function enrolWith(hub: TestHub, token: string) {
    const key = generateKey().key;
    const res = await hub.app.inject({
      method: 'POST',
      url: paths.enrol(),
      payload: { token, publicKey: key.publicRaw.toString('base64') },
    });
    return { res, key };
  }

  it('refuses a token issued before enrolment used after it, and an operator token for an enrolled ship', async () => {
    const hub = await startHub();
    const add = (await call(hub, hub.token('operator'), 'POST', paths.vessels(), { name: 'ship-k' })).json();
    const spare = (await call(hub, hub.token('operator'), 'POST', paths.vesselTokens('ship-k'), {})).json();
    const first = await enrolWith(hub, add.token);
    expect(first.res.statusCode).toBe(200);
    const before = (await hub.deps.store.vessels.getByName('ship-k'))!.publicKey;
    // The spare token, issued while the vessel was pending, no longer replaces its key.
    const late = await enrolWith(hub, spare.token);
    expect(late.res.statusCode).toBeGreaterThanOrEqual(400);
    expect(late.res.statusCode).toBeLessThan(500);
    for (const role of ['operator', 'admin'] as const) {
      const more = await call(hub, hub.token(role), 'POST', paths.vesselTokens('ship-k'), {});
      expect(more.statusCode, role).toBe(409);
      expect(more.json().message).toMatch(/re-key/);
    }
    for (const role of ['viewer', 'operator'] as const)
      expect((await call(hub, hub.token(role), 'POST', paths.vesselRekey('ship-k'), {})).statusCode).toBe(403);
    expect((await hub.deps.store.vessels.getByName('ship-k'))!.publicKey).toBe(before);
  });

  it("an admin's re-key cancels every other token, is audited, the old key stops only when it is claimed", async () => {
    const hub = await startHub();
    const v = await enrolVessel(hub, 'ship-x');
    const desired = paths.vesselDesired('ship-x');
    const r1 = await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('ship-x'), {});
    expect(r1.statusCode).toBe(201);
    const r2 = await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('ship-x'), { ttlSeconds: 600 });
    expect(r2.json().tokensCancelled).toBe(1);
    // The old key still works while the re-key is outstanding.
    expect((await hub.app.inject({ url: desired, headers: v.sign('GET', desired).headers })).statusCode).toBe(200);
    expect((await enrolWith(hub, r1.json().token)).res.statusCode).toBe(401);
    const fresh = await enrolWith(hub, r2.json().token);
    expect(fresh.res.statusCode).toBe(200);
    expect((await hub.app.inject({ url: desired, headers: v.sign('GET', desired).headers })).statusCode).toBe(401);
    const headers = signVesselRequest(fresh.key, v.id, 'GET', desired, Date.now());
    expect((await hub.app.inject({ url: desired, headers })).statusCode).toBe(200);
    // Used once: the same re-key token does not work again.
    expect((await enrolWith(hub, r2.json().token)).res.statusCode).toBe(409);
    const audit = (await call(hub, hub.token('admin'), 'GET', paths.audit({ limit: 1000 }))).json();
    const rekeys = audit.records.filter((r: { action: string }) => r.action === 'vessel.rekey');
    expect(rekeys).toHaveLength(2);
    expect(rekeys[0].actor).toMatch(/^ops:test-admin:/);
    expect(rekeys[0].detail).toMatchObject({ vessel: 'ship-x' });
  });

  it('refuses a re-key for a vessel not enrolled, revoked or unknown, and by a vessel', async () => {
    const hub = await startHub();
    await call(hub, hub.token('operator'), 'POST', paths.vessels(), { name: 'ship-p' });
    expect((await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('ship-p'), {})).statusCode).toBe(409);
    expect((await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('nobody'), {})).statusCode).toBe(404);
    expect((await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('../x'), {})).statusCode).toBe(400);
    const v = await enrolVessel(hub, 'ship-q');
    const s = v.sign('POST', paths.vesselRekey('ship-q'), {});
    expect(
      (
        await hub.app.inject({
          method: 'POST',
          url: paths.vesselRekey('ship-q'),
          headers: s.headers,
          payload: s.payload,
        })
      ).statusCode,
    ).toBe(403);
    await call(hub, hub.token('admin'), 'POST', paths.vesselRevoke('ship-q'), {});
    expect((await call(hub, hub.token('admin'), 'POST', paths.vesselRekey('ship-q'), {})).statusCode).toBe(400);
    expect((await hub.deps.store.audit.list({ limit: 100 })).filter((r) => r.action === 'vessel.rekey')).toHaveLength(
      0,
    );
  });

  it('tender vessel rekey prints a token that enrols', async () => {
    const hub = await startHub();
    await enrolVessel(hub, 'ship-c');
    const url = await hub.listen();
    const env = { TENDER_HUB: url, TENDER_TOKEN: hub.token('admin'), TENDER_CONFIG: join(tempDir('cli-'), 'none') };
    const out = await runCli(['vessel', 'rekey', 'ship-c', '--json'], env);
    expect(out.code, out.stderr).toBe(0);
    const { token } = JSON.parse(out.stdout);
    expect((await enrolWith(hub, token)).res.statusCode).toBe(200);
    const op = await runCli(['vessel', 'rekey', 'ship-c'], { ...env, TENDER_TOKEN: hub.token('operator') });
    expect(op.code).not.toBe(0);
    expect(op.stderr).toMatch(/admin/);
  });
});

describe('ops tokens made before expiry existed', () => {
  it('are still accepted (null expiry), and one made already expired never is', async () => {
    const hub = await startHub();
    const old = await createOpsToken(hub.deps.store, 'viewer', 'legacy', Date.now(), undefined, null);
    expect((await call(hub, old.token, 'GET', paths.vessels())).statusCode).toBe(200);
    const dead = await createOpsToken(hub.deps.store, 'viewer', 'dead', Date.now(), undefined, Date.now() - 1);
    expect((await call(hub, dead.token, 'GET', paths.vessels())).statusCode).toBe(401);
  });
});
