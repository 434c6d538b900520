import { chmodSync, mkdirSync, readlinkSync, realpathSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chunkBinary } from '../../publisher/agent-publish.js';
import { createChunkStore } from '../../shared/content/chunk-store.js';
import { contentChunks, namedChunks } from '../../shared/content/release-chunks.js';
import { AGENT_APP, verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import { envelopeBytes, signEnvelope } from '../../shared/trust/envelope.js';
import { verifyInitialRoot } from '../../shared/trust/root.js';
import { readJournal, selfPaths, writeJournal, pointCurrent } from '../../agent/self-update/layout.js';
import { MAX_TRIAL_STARTS, preflight } from '../../agent/self-update/preflight.js';
import { makeKeys, rootPayloadFor, signedRoot } from '../helpers/keys.js';
import { tempDir } from '../helpers/tmp.js';

function exe(dir: string, name: string, body = `#!/bin/sh\necho ${name}\n`): string {
  const f = join(dir, name);
  writeFileSync(f, body);
  chmodSync(f, 0o755);
  return realpathSync(f);
}

function setup() {
  const dir = tempDir('tender-self-');
  const p = selfPaths(join(dir, 'state'));
  const installed = exe(dir, 'installed');
  return { dir, p, installed };
}

/** A trial from `old` to `next` as the agent writes it before switching the link. */
function startTrial(p: ReturnType<typeof selfPaths>, old: string, next: string, deadline = Date.now() + 60_000) {
  writeJournal(p, {
    ...readJournal(p),
    phase: 'trial',
    version: '0.2.0',
    sequence: 2,
    rolloutId: 7,
    from: { version: '0.1.0', path: old },
    to: { version: '0.2.0', path: next },
    deadline,
    starts: 0,
  });
}

describe('self-update preflight', () => {
  it('links current to the installed executable on a first start', () => {
    const { p, installed } = setup();
    expect(preflight(p, installed).action).toBe('linked-installed');
    expect(realpathSync(p.current)).toBe(installed);
    expect(preflight(p, installed).action).toBe('none');
  });

  it('counts the starts of a trial and puts the previous executable back past the limit', () => {
    const { p, installed, dir } = setup();
    preflight(p, installed);
    mkdirSync(p.bin, { recursive: true });
    const next = exe(p.bin, 'tender-0.2.0');
    startTrial(p, installed, next);
    pointCurrent(p, next);
    for (let i = 1; i <= MAX_TRIAL_STARTS; i++) {
      expect(preflight(p, installed).action).toBe('trial-start');
      expect(readJournal(p).starts).toBe(i);
      expect(realpathSync(p.current)).toBe(next);
    }
    const r = preflight(p, installed);
    expect(r.action).toBe('reverted');
    expect(realpathSync(p.current)).toBe(installed);
    const j = readJournal(p);
    expect(j.phase).toBe('reverted');
    expect(j.failure).toBe('crashed-after-flip');
    expect(j.reason).toContain(`${MAX_TRIAL_STARTS} starts`);
    // Reverted is final until the agent reports it: the next preflight changes nothing.
    expect(preflight(p, installed).action).toBe('none');
    expect(dir).toBeTruthy();
  });

  it('reverts a trial past its deadline at the next start', () => {
    const { p, installed } = setup();
    preflight(p, installed);
    mkdirSync(p.bin, { recursive: true });
    const next = exe(p.bin, 'tender-0.2.0');
    startTrial(p, installed, next, Date.now() - 1);
    pointCurrent(p, next);
    expect(preflight(p, installed).action).toBe('reverted');
    expect(readJournal(p).failure).toBe('rolled-back');
    expect(realpathSync(p.current)).toBe(installed);
  });

  it('abandons a trial whose link was never switched (killed between journal and link)', () => {
    const { p, installed } = setup();
    preflight(p, installed);
    mkdirSync(p.bin, { recursive: true });
    startTrial(p, installed, exe(p.bin, 'tender-0.2.0'));
    expect(preflight(p, installed).action).toBe('trial-abandoned');
    expect(readJournal(p).phase).toBe('idle');
    expect(realpathSync(p.current)).toBe(installed);
  });

  it('lets the installer win when it replaced the installed executable', () => {
    const { p, installed } = setup();
    preflight(p, installed);
    mkdirSync(p.bin, { recursive: true });
    const updated = exe(p.bin, 'tender-0.2.0');
    pointCurrent(p, updated);
    expect(preflight(p, installed).action).toBe('none');
    writeFileSync(installed, '#!/bin/sh\necho newer installed\n');
    utimesSync(installed, new Date(), new Date(Date.now() + 5_000));
    expect(preflight(p, installed).action).toBe('installer-upgrade');
    expect(realpathSync(p.current)).toBe(installed);
  });

  it('starts the installed executable when the journal is damaged, or current dangles', () => {
    const { p, installed } = setup();
    preflight(p, installed);
    writeFileSync(p.journal, '{"phase":"trial"');
    expect(preflight(p, installed).action).toBe('linked-installed');
    expect(readJournal(p).phase).toBe('idle');
    pointCurrent(p, join(p.bin, 'gone'));
    expect(readlinkSync(p.current)).toBe(join(p.bin, 'gone'));
    expect(preflight(p, installed).action).toBe('linked-installed');
    expect(realpathSync(p.current)).toBe(installed);
  });
});

describe('agent executable as a signed release', () => {
  const keys = makeKeys(1, 1);
  const root = verifyInitialRoot(signedRoot(rootPayloadFor(1, keys, { rootThreshold: 1 }), keys.root));
  const sign = (m: unknown) => envelopeBytes(signEnvelope('release', m, keys.release));
  const base = {
    _type: 'release',
    spec: 1,
    version: '0.2.0',
    sequence: 1,
    createdAt: '2026-01-01T00:00:00Z',
    services: {},
    images: {},
  } as const;

  it('chunks an executable so that a new version shares the unchanged chunks', async () => {
    const dir = tempDir('tender-binchunks-');
    const cache = createChunkStore(join(dir, 'cache'));
    const bytes = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    writeFileSync(join(dir, 'v1'), bytes);
    const v2 = Buffer.from(bytes);
    v2.write('a changed constant in the middle', 1_500_000);
    writeFileSync(join(dir, 'v2'), v2);
    const b1 = (await chunkBinary(join(dir, 'v1'), cache, 'linux-x64'))!;
    const b2 = (await chunkBinary(join(dir, 'v2'), cache, 'linux-x64'))!;
    expect(b1.size).toBe(bytes.length);
    const m1: ReleaseManifest = { ...base, app: AGENT_APP, binary: b1 };
    const m2: ReleaseManifest = { ...base, app: AGENT_APP, version: '0.3.0', binary: b2 };
    expect([...namedChunks(m1).keys()]).toEqual([b1.index[0]]);
    const c1 = contentChunks(m1, cache).chunks;
    const c2 = contentChunks(m2, cache).chunks;
    const fresh = [...c2.keys()].filter((d) => !c1.has(d));
    expect(c2.size).toBeGreaterThan(40);
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.length).toBeLessThanOrEqual(3);
    expect(verifyManifest(root, sign(m2)).binary?.sha256).toBe(b2.sha256);
  });

  it('refuses a binary outside the agent app, the agent app without one, and one with services', async () => {
    const binary = { platform: 'linux-x64', size: 10, sha256: 'a'.repeat(64), index: ['b'.repeat(64), 40, 30] };
    expect(() => verifyManifest(root, sign({ ...base, app: 'sms', binary }))).toThrow(/only app tender-agent/);
    expect(() => verifyManifest(root, sign({ ...base, app: AGENT_APP }))).toThrow(/must carry binary/);
    const svc = {
      imageRef: 'x:1',
      imageId: `sha256:${'c'.repeat(64)}`,
      ports: [],
      environment: {},
      volumes: [],
      command: null,
      healthcheck: null,
      restart: 'no',
      dependsOn: [],
      strategy: 'recreate',
      gate: { type: 'none' },
      drainMs: 0,
    };
    expect(() => verifyManifest(root, sign({ ...base, app: AGENT_APP, binary, services: { x: svc } }))).toThrow(
      /no services or images/,
    );
  });
});
