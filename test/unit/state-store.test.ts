import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openStateStore, StateWriteError, type StatePaths } from '../../agent/state-store.js';
import { AGENT_MIGRATIONS } from '../../agent/migrations.js';
import { createBoardReleases } from '../../agent/release/board-releases.js';
import { createRefusedManifests } from '../../agent/release/refused-manifests.js';
import { openDatabase } from '../../shared/sqlite.js';
import { tempDir } from '../helpers/tmp.js';

function paths(): StatePaths {
  const dir = tempDir();
  return { db: join(dir, 'state.db'), outbox: join(dir, 'outbox.db') };
}

/** A logger whose lines the test can read. */
function captured() {
  const lines: { msg: string; key?: string; reason?: string }[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

/** Write a key as the agent before typed state did: any JSON under any key, null to clear. */
function putRaw(p: StatePaths, key: string, json: string): void {
  const db = openDatabase(p.db, AGENT_MIGRATIONS);
  db.prepare('INSERT OR REPLACE INTO kv (key, value, updated_at) VALUES (?, ?, ?)').run(key, json, 1);
  db.close();
}

describe('typed agent state', () => {
  it('reads a key never written as absent, and a written one back with its type', () => {
    const store = openStateStore(paths());
    expect(store.get('crew.hold')).toBeUndefined();
    expect(store.get('link.state')).toBeUndefined();
    store.setMany({ 'crew.hold': { sequence: 4 }, 'link.state': 'down', 'link.lastError': 'timed out' });
    expect(store.get('crew.hold')).toEqual({ sequence: 4 });
    expect(store.get('link.state')).toBe('down');
    store.set('link.lastError', null);
    expect(store.get('link.lastError')).toBeUndefined();
    store.close();
  });

  it('treats a stored value that does not fit its schema as absent, and says so once', () => {
    const p = paths();
    putRaw(p, 'watch', JSON.stringify({ version: '2.0.0', until: 'tomorrow', restarts: {} }));
    putRaw(p, 'time.floor', '{not json');
    const { log, lines } = captured();
    const store = openStateStore(p, { log });
    expect(store.get('watch')).toBeUndefined();
    expect(store.get('watch')).toBeUndefined();
    expect(store.get('time.floor')).toBeUndefined();
    const warned = lines.filter((l) => l.msg.includes('does not fit its schema'));
    expect(warned.map((l) => l.key)).toEqual(['watch', 'time.floor']);
    expect(warned[0]!.reason).toMatch(/until/);
    // A good value written over it reads again.
    store.set('time.floor', 1_700_000_000_000);
    expect(store.get('time.floor')).toBe(1_700_000_000_000);
    store.close();
  });

  it('reads null (how earlier versions cleared a key) as absent without a warning', () => {
    const p = paths();
    putRaw(p, 'release.pending', 'null');
    const { log, lines } = captured();
    const store = openStateStore(p, { log });
    expect(store.get('release.pending')).toBeUndefined();
    expect(lines).toEqual([]);
    store.close();
  });

  it('refuses to write a value that does not fit its key, and leaves the stored one', () => {
    const store = openStateStore(paths());
    store.set('crew.hold', { sequence: 3 });
    expect(() => store.set('crew.hold', { sequence: 'three' } as never)).toThrow(StateWriteError);
    expect(() => store.setMany({ 'release.pending': '3.0.0', 'crew.hold': { sequence: -1 } })).toThrow(/crew.hold/);
    expect(store.get('crew.hold')).toEqual({ sequence: 3 });
    // setMany is one transaction: the good key of a refused batch did not land either.
    expect(store.get('release.pending')).toBeUndefined();
    store.close();
  });
});

describe('a state database written before typed state', () => {
  /** What the agent's database looked like at schema 4, with the keys that version wrote. */
  function oldDatabase(opts: { held: boolean; failedServing?: boolean }): StatePaths {
    const p = paths();
    const db = openDatabase(
      p.db,
      AGENT_MIGRATIONS.filter((m) => m.id <= 4),
    );
    const release = db.prepare(
      'INSERT INTO releases (version, app, sequence, envelope, state, installed_at, ' +
        'last_live_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    release.run('1.0.0', 'portal', 1, Buffer.from('env1'), 'kept', 1, 10);
    release.run('2.0.0', 'portal', 2, Buffer.from('env2'), opts.failedServing ? 'failed' : 'live', 2, 20);
    const kv = db.prepare('INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)');
    const desired = {
      vessel: 'ship',
      release: { app: 'portal', version: '2.0.0', sequence: 2, rolloutId: 1 },
      rootVersion: 1,
    };
    const old: Record<string, unknown> = {
      desired,
      'desired.etag': '"abc"',
      'hub.skewMs': -3000,
      'link.state': 'up',
      'link.lastOk': '2026-11-26T12:00:00.000Z',
      'link.lastError': null,
      'link.cheap': true,
      'sync.lastAt': '2026-11-26T12:00:00.000Z',
      'status.lastReport': { fingerprint: 'f', at: 5 },
      'release.current': '2.0.0',
      'release.previous': '1.0.0',
      'release.pending': null,
      'release.held': opts.held,
      'hold.sequence': opts.held ? 7 : null,
      'release.lastResult': { version: '2.0.0', result: 'live', reason: null, at: '2026-11-26T12:00:00.000Z' },
      watch: { version: '2.0.0', until: 99, restarts: { web: 0 } },
      'time.floor': 1_700_000_000_000,
      'refused.version': '0.9.0',
      'disk.refused': '3.0.0',
      'refused.manifest.portal@3.0.0#3': 'release 3.0.0 refused: bad signature',
    };
    for (const [k, v] of Object.entries(old)) kv.run(k, JSON.stringify(v), 1234);
    db.close();
    return p;
  }

  it('opens, moves each key to its new home, and reads every value with its type', () => {
    const { log, lines } = captured();
    const store = openStateStore(oldDatabase({ held: true }), { log });
    expect(store.get('desired')?.release?.version).toBe('2.0.0');
    expect(store.get('desired.etag')).toBe('"abc"');
    expect(store.get('hub.skewMs')).toBe(-3000);
    expect(store.get('link.state')).toBe('up');
    expect(store.get('link.lastOk')).toBe('2026-11-26T12:00:00.000Z');
    expect(store.get('link.lastError')).toBeUndefined();
    expect(store.get('link.cheap')).toBe(true);
    expect(store.get('sync.lastAt')).toBe('2026-11-26T12:00:00.000Z');
    expect(store.get('status.lastReport')).toEqual({ fingerprint: 'f', at: 5 });
    expect(store.get('release.previous')).toBe('1.0.0');
    expect(store.get('release.pending')).toBeUndefined();
    expect(store.get('release.lastResult')?.result).toBe('live');
    expect(store.get('watch')).toEqual({ version: '2.0.0', until: 99, restarts: { web: 0 } });
    expect(store.get('time.floor')).toBe(1_700_000_000_000);
    expect(store.get('refused.version')).toBe('0.9.0');
    expect(store.get('disk.refused')).toBe('3.0.0');
    // Concepts that were several keys, or a family of keys, now have one home each.
    expect(store.get('crew.hold')).toEqual({ sequence: 7 });
    expect(createBoardReleases(store.db).serving()?.version).toBe('2.0.0');
    expect(createRefusedManifests(store.db).reason('portal@3.0.0#3')).toBe('release 3.0.0 refused: bad signature');
    const keys = (store.db.prepare('SELECT key FROM kv').all() as { key: string }[]).map((r) => r.key);
    expect(keys.filter((k) => /^(release\.current|release\.held|hold\.sequence|refused\.manifest\.)/.test(k))).toEqual(
      [],
    );
    expect(lines).toEqual([]);
    store.close();
  });

  it('has no crew hold when the old one was released', () => {
    const store = openStateStore(oldDatabase({ held: false }));
    expect(store.get('crew.hold')).toBeUndefined();
    store.close();
  });

  it('still knows which release serves when it was marked failed with nothing to go back to', () => {
    const store = openStateStore(oldDatabase({ held: false, failedServing: true }));
    const board = createBoardReleases(store.db);
    expect(board.live()).toBeUndefined();
    expect(board.serving()?.version).toBe('2.0.0');
    // The next switch moves it.
    board.setLive('portal', '1.0.0');
    expect(board.serving()?.version).toBe('1.0.0');
    store.close();
  });
});
