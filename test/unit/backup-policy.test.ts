import { describe, expect, it } from 'vitest';
import { parsePolicyFile, MAX_POLICY_BYTES } from '../../shared/protocol/backup-policy.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { generateKey } from '../../shared/trust/keys.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import { openBackupDb } from '../../agent/backup/backup-db.js';
import { installPolicy, boardPolicy, verifyPolicyBytes } from '../../agent/backup/board-policies.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { tempDir } from '../helpers/tmp.js';
import pino from 'pino';
import { createPolicySync } from '../../agent/backup/desired-policies.js';
import type { BackupDeps } from '../../agent/backup/context.js';

const FILE = `
name: sms-db
app: sms
service: db
method: { type: postgres, database: sms }
schedule: "0 3 * * *"
timeout: 20m
compression: zstd
retention: { count: 14, age: 30d }
ashore: { ship: latest, when: cheap, budgetPerDay: 200MB }
`;

const parse = (text: string, sequence = 1) =>
  parsePolicyFile(text, 'p.yml', { sequence, now: new Date('2026-01-01T00:00:00Z') });

function setup() {
  const keys = makeKeys(3, 1);
  const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys), keys.root));
  const db = openBackupDb(`${tempDir()}/backups.db`);
  const sign = (text: string, sequence: number) =>
    envelopeBytes(signEnvelope('policy', parse(text, sequence), [keys.release[0]!]));
  const ctx = {
    vessel: 'ship-a',
    services: (app: string) => (app === 'sms' ? { release: '1.0.0', services: ['db', 'portal'] } : undefined),
    now: Date.parse('2026-01-01T12:00:00Z'),
  };
  return { keys, root, db, sign, ctx };
}

describe('policy files', () => {
  it('normalises a policy file into the document that is signed, defaults filled in', () => {
    const p = parse(FILE);
    expect(p).toMatchObject({
      _type: 'policy',
      name: 'sms-db',
      target: { app: 'sms', service: 'db' },
      method: { type: 'postgres', database: 'sms', user: 'postgres' },
      schedule: '0 3 * * *',
      timeoutSeconds: 1200,
      compression: 'zstd',
      retention: { count: 14, maxAgeSeconds: 30 * 86400 },
      ashore: { ship: 'latest', onlyWhenCheap: true, bytesPerDay: 200_000_000 },
      encryption: null,
      targets: ['all'],
    });
  });

  it('refuses an unknown method, naming the field and the methods there are', () => {
    expect(() => parse(FILE.replace('type: postgres', 'type: mysql'))).toThrow(
      'p.yml: method.type: unknown method "mysql" (one of postgres, sqlite, volume, exec)',
    );
  });

  it('refuses an unparsable schedule, naming the field', () => {
    expect(() => parse(FILE.replace('"0 3 * * *"', '"0 25 * * *"'))).toThrow(
      /^p\.yml: schedule: not a valid cron expression "0 25 \* \* \*"/,
    );
    expect(() => parse(FILE.replace('"0 3 * * *"', '"nightly"'))).toThrow(
      /^p\.yml: schedule: must be a cron expression of 5 fields/,
    );
  });

  it('refuses a retention of zero, by count or by age', () => {
    expect(() => parse(FILE.replace('count: 14', 'count: 0'))).toThrow(
      'p.yml: retention.count: zero keeps no backup; refused',
    );
    expect(() => parse(FILE.replace('age: 30d', 'age: 0'))).toThrow(
      'p.yml: retention.maxAgeSeconds: zero keeps no backup; refused',
    );
  });

  it('refuses unknown fields and method options of another method', () => {
    expect(() => parse(`${FILE}colour: blue\n`)).toThrow('p.yml: (top level): unsupported key "colour"');
    expect(() => parse(FILE.replace('database: sms', 'database: sms, path: /x'))).toThrow(
      /p\.yml: method: unsupported key "path"/,
    );
  });

  it('refuses an exec policy whose command is empty and a sqlite path with shell characters', () => {
    expect(() => parse(FILE.replace('{ type: postgres, database: sms }', '{ type: exec, backup: [] }'))).toThrow(
      /method\.backup/,
    );
    expect(() =>
      parse(FILE.replace('{ type: postgres, database: sms }', '{ type: sqlite, path: "/data/x.db; rm -rf /" }')),
    ).toThrow(/method\.path: must be an absolute path/);
  });
});

describe('policies on board', () => {
  it('installs a signed policy and verifies it again at every use', () => {
    const { root, db, sign, ctx } = setup();
    const r = installPolicy(db, root, sign(FILE, 5), ctx);
    expect(r.installed).toBe(true);
    expect(boardPolicy(db, root, 'sms-db').sequence).toBe(5);
    // Installing does not run it at once: the slot just passed counts as claimed.
    expect(db.policy('sms-db')!.lastSlot).toBe(Date.parse('2026-01-01T03:00:00Z'));
  });

  it('refuses an older or equal sequence of the same policy, and keeps the newer', () => {
    const { root, db, sign, ctx } = setup();
    installPolicy(db, root, sign(FILE, 5), ctx);
    expect(() => installPolicy(db, root, sign(FILE.replace('count: 14', 'count: 2'), 4), ctx)).toThrow(
      'policy sms-db #4 refused: this vessel holds #5 (an older policy cannot replace a newer one)',
    );
    expect(() => installPolicy(db, root, sign(FILE.replace('count: 14', 'count: 2'), 5), ctx)).toThrow(/holds #5/);
    expect(boardPolicy(db, root, 'sms-db').retention.count).toBe(14);
    expect(installPolicy(db, root, sign(FILE.replace('count: 14', 'count: 2'), 6), ctx).installed).toBe(true);
  });

  it('refuses a policy signed by a key the root does not list, or edited after signing', () => {
    const { root, db, ctx } = setup();
    const stranger = envelopeBytes(signEnvelope('policy', parse(FILE), [generateKey().key]));
    expect(() => installPolicy(db, root, stranger, ctx)).toThrow(/policy refused: release threshold not met/);
    expect(db.policies()).toEqual([]);
  });

  it('refuses a release manifest passed off as a policy', () => {
    const { keys, root, db, ctx } = setup();
    const asRelease = envelopeBytes(signEnvelope('release', parse(FILE), [keys.release[0]!]));
    expect(() => installPolicy(db, root, asRelease, ctx)).toThrow(/expected a policy document, got a release document/);
  });

  it('refuses a target service that does not exist on board, naming the services there are', () => {
    const { root, db, sign, ctx } = setup();
    expect(() => installPolicy(db, root, sign(FILE.replace('service: db', 'service: dbx'), 1), ctx)).toThrow(
      'policy sms-db refused: it targets service sms/dbx, which the live release sms@1.0.0 does not have (db, portal)',
    );
  });

  it('refuses a policy meant only for other vessels', () => {
    const { root, db, sign, ctx } = setup();
    expect(() => installPolicy(db, root, sign(`${FILE}targets: [vessel:ship-b]\n`, 1), ctx)).toThrow(/not ship-a/);
    expect(installPolicy(db, root, sign(`${FILE}targets: [vessel:ship-b, vessel:ship-a]\n`, 1), ctx).installed).toBe(
      true,
    );
  });

  it('a newer sequence that no longer names this vessel removes the policy; an older one is refused', () => {
    const { root, db, sign, ctx } = setup();
    installPolicy(db, root, sign(`${FILE}targets: [group:north]\n`, 3), { ...ctx, groups: ['north'] });
    expect(() =>
      installPolicy(db, root, sign(`${FILE}targets: [group:south]\n`, 2), { ...ctx, groups: ['north'] }),
    ).toThrow(/not ship-a/);
    expect(db.policy('sms-db')?.sequence).toBe(3);
    const r = installPolicy(db, root, sign(`${FILE}targets: [group:south]\n`, 4), { ...ctx, groups: ['north'] });
    expect(r).toMatchObject({ installed: false, removed: true });
    expect(r.note).toMatch(/no longer names ship-a: removed/);
    expect(db.policy('sms-db')).toBeUndefined();
    // Groups unknown (no desired state yet): a group target is taken as it comes.
    expect(installPolicy(db, root, sign(`${FILE}targets: [group:south]\n`, 5), ctx).installed).toBe(true);
  });

  it('a signed retirement removes the policy, keeps its backups, and refuses any older sequence after', () => {
    const { root, keys, db, ctx } = setup();
    const signDoc = (doc: unknown) => envelopeBytes(signEnvelope('policy', doc, [keys.release[0]!]));
    const events: [string, Record<string, unknown>][] = [];
    const d = {
      vessel: ctx.vessel,
      db,
      root: () => root,
      now: () => ctx.now,
      services: ctx.services,
      event: (type: string, data: Record<string, unknown>) => events.push([type, data]),
      log: pino({ level: 'silent' }),
    } as unknown as BackupDeps;
    const sync = createPolicySync(d);
    const v5 = signDoc(parse(FILE, 5));
    const retire6 = signDoc({ ...parse(FILE, 6), retired: true });
    const desired = (p: Buffer[]) => ({
      vessel: 'ship-a',
      release: null,
      rootVersion: 1,
      groups: [],
      policies: p.map((b) => b.toString('base64')),
    });
    expect(sync(desired([v5]))).toEqual(['sms-db']);
    // A retirement signed with an older or equal sequence than the one held is refused.
    expect(() => installPolicy(db, root, signDoc({ ...parse(FILE, 5), retired: true }), ctx)).toThrow(/holds #5/);
    expect(sync(desired([retire6]))).toEqual(['sms-db']);
    expect(db.policy('sms-db')).toBeUndefined();
    expect(events.map((e) => e[0])).toEqual(['policy.installed', 'policy.retired']);
    // Delivered again on every poll: nothing happens, nothing is reported.
    expect(sync(desired([retire6]))).toEqual([]);
    expect(events).toHaveLength(2);
    // The old policy replayed (by hand or by a hub) stays out; a newer signed one brings it back.
    expect(() => installPolicy(db, root, v5, ctx)).toThrow(/retired on this vessel at #6/);
    expect(() => installPolicy(db, root, signDoc(parse(FILE, 6)), ctx)).toThrow(/retired on this vessel at #6/);
    expect(installPolicy(db, root, signDoc(parse(FILE, 7)), ctx).installed).toBe(true);
    // A retirement for a policy never held here is remembered too.
    const other = FILE.replace('name: sms-db', 'name: sms-files');
    expect(installPolicy(db, root, signDoc({ ...parse(other, 3), retired: true }), ctx)).toMatchObject({
      installed: false,
    });
    expect(() => installPolicy(db, root, signDoc(parse(other, 2)), ctx)).toThrow(/retired on this vessel at #3/);
  });

  it('policies from the desired state install through the same checks, a refusal reported once', () => {
    const { root, db, sign, ctx } = setup();
    const events: [string, Record<string, unknown>][] = [];
    const d = {
      vessel: ctx.vessel,
      db,
      root: () => root,
      now: () => ctx.now,
      services: ctx.services,
      event: (type: string, data: Record<string, unknown>) => events.push([type, data]),
      log: pino({ level: 'silent' }),
    } as unknown as BackupDeps;
    const sync = createPolicySync(d);
    const good = sign(FILE, 7).toString('base64');
    const forged = envelopeBytes(signEnvelope('policy', parse(FILE, 8), [generateKey().key])).toString('base64');
    const desired = { vessel: 'ship-a', release: null, rootVersion: 1, groups: [], policies: [good, forged] };
    expect(sync(desired)).toEqual(['sms-db']);
    expect(sync(desired)).toEqual([]);
    expect(db.policy('sms-db')?.sequence).toBe(7);
    expect(events.map((e) => e[0])).toEqual(['policy.installed', 'policy.refused']);
    // With the link down there is no new desired state: what is held stays.
    expect(sync(undefined)).toEqual([]);
    expect(db.policy('sms-db')?.sequence).toBe(7);
  });

  it('refuses a signed policy over the size cap while reading it', () => {
    const { root } = setup();
    expect(() => verifyPolicyBytes(root, Buffer.alloc(MAX_POLICY_BYTES + 1, 0x20))).toThrow(
      `not a signed document: document is ${MAX_POLICY_BYTES + 1} bytes, over the ${MAX_POLICY_BYTES}-byte limit`,
    );
  });

  it('refuses a policy kept on board whose file was altered', () => {
    const { root, db, sign, ctx } = setup();
    installPolicy(db, root, sign(FILE, 1), ctx);
    const row = db.policy('sms-db')!;
    const env = JSON.parse(row.envelope.toString());
    env.payload = Buffer.from(
      Buffer.from(env.payload, 'base64').toString().replace('"count":14', '"count":1'),
    ).toString('base64');
    db.installPolicy('sms-db', 1, Buffer.from(JSON.stringify(env)), ctx.now, row.lastSlot);
    expect(() => boardPolicy(db, root, 'sms-db')).toThrow(/kept on board no longer verifies.*tampered/);
  });
});
