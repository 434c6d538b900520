import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  createReadStream,
  fsyncSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../../shared/errors.js';
import { ChunkError, verifyCompressedChunk, type ChunkStore } from '../../shared/content/chunk-store.js';
import { loadLayerIndex } from '../../shared/content/release-chunks.js';
import { chunkFile } from '../../shared/content/binary-chunks.js';
import { fsyncDir } from '../../shared/fs-atomic.js';
import type { DesiredState } from '../../shared/protocol/bodies.js';
import { AGENT_APP, verifyManifest, type ReleaseManifest } from '../../shared/protocol/manifest.js';
import type { FailureKind } from '../../shared/protocol/rollout-outcome.js';
import { assertRootFresh, type TrustedRoot } from '../../shared/trust/root.js';
import { faultPoint } from '../fault.js';
import { checkManifestBounds, trustedTime } from '../release/bounds.js';
import { manifestDigest } from '../release/board-releases.js';
import { TransferDeferred, type InstallSource } from '../release/install-source.js';
import { reportOutcome } from '../release/outcomes.js';
import { switchWindow } from '../release/switch-window.js';
import type { Target } from '../release/targets.js';
import type { StateStore } from '../state-store.js';
import { AGENT_VERSION } from '../version.js';
import {
  currentTarget,
  fileFacts,
  pointCurrent,
  pruneBinaries,
  readJournal,
  SelfUpdateError,
  selfPaths,
  writeJournal,
  type UpdateJournal,
} from './layout.js';

// How long a trial may take in all before it is given up: starts, first sync, settling.
const TRIAL_MS = 10 * 60_000;
// The running executable's chunks are stored for reuse only: brotli's fastest level is enough.
const SEED_QUALITY = 1;
// `--version` of a staged executable must answer within this (it proves the file runs on this host).
const PRECHECK_MS = 30_000;

export interface SelfUpdateDeps {
  dataDir: string;
  store: Pick<StateStore, 'get' | 'set' | 'event'>;
  chunks: ChunkStore;
  root: () => TrustedRoot;
  source?: InstallSource;
  log: Logger;
  /** Time the new agent must run with a successful sync before it counts as healthy. */
  settleMs: number;
  now: () => number;
  /** The executable this process runs (process.execPath in the single executable). */
  self: string;
  /** Stop the agent so that systemd starts `current` again. */
  restart: (why: string) => void;
}

/**
 * The agent updating itself through the signed path: a release of app `tender-agent` is fetched like any
 * release (same chunked, resumable, capped transfer; same signatures, sequence and bounds checks), its
 * executable reassembled and checked against the manifest's sha256, run once with `--version`, then
 * swapped in by one rename of the `current` link, with the journal (self/update.json) written first.
 * The new agent has a trial: healthy after a successful sync and a settling time; otherwise the preflight
 * (a crash loop) or the agent itself (no healthy report by the deadline) puts the previous one back.
 */
export function createSelfUpdater(deps: SelfUpdateDeps) {
  const p = selfPaths(deps.dataDir);
  const startedAt = Date.now();
  const said = new Set<string>();
  let seeded = false;
  const out = (
    t: Pick<Target, 'version' | 'rolloutId'>,
    o: Parameters<typeof reportOutcome>[2],
    failure?: FailureKind,
    reason?: string,
  ) =>
    reportOutcome(deps.store, { app: AGENT_APP, version: t.version, rolloutId: t.rolloutId }, o, {
      ...(failure && { failure }),
      ...(reason && { reason }),
    });

  const journal = (): UpdateJournal | undefined => {
    try {
      return readJournal(p);
    } catch (err) {
      deps.log.warn(
        { reason: errorMessage(err) },
        'self-update journal unreadable; no self-update until the next start',
      );
      return undefined;
    }
  };

  /** A refusal said once per process (event and log); the outcome is deduplicated by reportOutcome. */
  function refuse(t: Target, reason: string, remember: boolean): void {
    if (!said.has(`${t.version} ${reason}`)) {
      said.add(`${t.version} ${reason}`);
      deps.store.event('agent.update.refused', { version: t.version, reason });
      deps.log.warn({ version: t.version, reason }, 'agent update refused');
    }
    if (remember) {
      const j = journal();
      if (j && !j.failed.some((f) => f.version === t.version))
        writeJournal(p, { ...j, failed: [...j.failed, { version: t.version, reason }].slice(-16) });
    }
    out(t, 'failed', 'refused', reason);
  }

  function runningFromCurrent(): boolean {
    const cur = currentTarget(p);
    try {
      return cur !== undefined && cur === realpathSync(deps.self);
    } catch {
      return false;
    }
  }

  async function acceptManifest(t: Target, j: UpdateJournal): Promise<ReleaseManifest | undefined> {
    const root = deps.root();
    assertRootFresh(root, new Date(trustedTime(deps.store, deps.now())));
    const bytes = t.manifest ? Buffer.from(t.manifest, 'base64') : await deps.source!.fetchManifest(t.app, t.version);
    try {
      if (t.digest && manifestDigest(bytes) !== t.digest)
        throw new SelfUpdateError(`manifest digest ${manifestDigest(bytes).slice(0, 12)} is not the target's`);
      const m = verifyManifest(root, bytes);
      if (m.version !== t.version || m.app !== AGENT_APP || m.sequence !== t.sequence || !m.binary)
        throw new SelfUpdateError(
          `manifest is ${m.app}@${m.version} #${m.sequence}, the target ${t.version} #${t.sequence}`,
        );
      const platform = `${process.platform}-${process.arch}`;
      if (m.binary.platform !== platform)
        throw new SelfUpdateError(`executable is for ${m.binary.platform}, this vessel is ${platform}`);
      checkManifestBounds(m, { newest: j.floor, now: deps.now() });
      return m;
    } catch (err) {
      refuse(t, `agent ${t.version} refused: ${errorMessage(err)}`, true);
      return undefined;
    }
  }

  /** Write the executable out of its chunks, each verified, then the whole against the manifest's sha256. */
  async function assemble(m: ReleaseManifest): Promise<string> {
    const b = m.binary!;
    const final = join(p.bin, `tender-${m.version}-${b.sha256.slice(0, 12)}`);
    if (fileFacts(final)?.size === b.size && (await sha256File(final)) === b.sha256) return final;
    const ix = loadLayerIndex(deps.chunks, b.index);
    if (ix.contentSize !== b.size || ix.meta.byteLength !== 0)
      throw new SelfUpdateError(`agent ${m.version}: its index lists ${ix.contentSize} bytes, the manifest ${b.size}`);
    const tmp = `${final}.part`;
    const fd = openSync(tmp, 'w', 0o750);
    const h = createHash('sha256');
    try {
      for (const [digest, raw] of ix.chunks) {
        let data: Buffer;
        try {
          data = verifyCompressedChunk(digest, deps.chunks.get(digest), raw);
        } catch (err) {
          // Damaged on disk: dropped, so the next round fetches it again.
          deps.chunks.remove(digest);
          throw new SelfUpdateError(
            `agent ${m.version}: chunk ${digest.slice(0, 12)} on board is damaged (${errorMessage(err)})`,
          );
        }
        h.update(data);
        for (let off = 0; off < data.byteLength;) off += writeSync(fd, data, off);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (h.digest('hex') !== b.sha256) {
      rmSync(tmp, { force: true });
      throw new SelfUpdateError(`agent ${m.version}: reassembled executable does not match the signed sha256`);
    }
    chmodSync(tmp, 0o750);
    faultPoint('agent-assemble', 'before');
    renameSync(tmp, final);
    fsyncDir(p.bin);
    return final;
  }

  /**
   * Once per process: the running executable's own chunks go into the store (cheaply compressed), so the
   * transfer of the next version fetches only the chunks that changed, not the whole of node again.
   */
  async function seedFromSelf(): Promise<void> {
    if (seeded) return;
    const t0 = Date.now();
    const r = await chunkFile(realpathSync(deps.self), deps.chunks, SEED_QUALITY);
    seeded = true;
    deps.log.info({ bytes: r.size, added: r.added, ms: Date.now() - t0 }, 'running executable chunked on board');
  }

  async function precheck(path: string, version: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      execFile(path, ['--version'], { timeout: PRECHECK_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) resolve(`${path} --version failed: ${errorMessage(err)} ${String(stderr).trim().slice(0, 200)}`);
        else if (stdout.trim() !== version)
          resolve(`${path} --version says ${stdout.trim().slice(0, 64)}, not ${version}`);
        else resolve(undefined);
      });
    });
  }

  const api = {
    paths: p,

    /** At agent start: report a revert the preflight made; drop a trial whose switch never happened. */
    startup(): void {
      const j = journal();
      if (!j) return;
      if (j.phase === 'reverted') {
        const reason = j.reason ?? `agent ${j.version} was put back`;
        deps.store.event('agent.update.failed', { version: j.version, reason, running: AGENT_VERSION });
        deps.log.warn({ version: j.version, reason, running: AGENT_VERSION }, 'agent update reverted');
        if (j.version)
          out({ version: j.version, rolloutId: j.rolloutId ?? null }, 'failed', j.failure ?? 'rolled-back', reason);
        writeJournal(p, {
          phase: 'idle',
          floor: j.floor,
          failed: [...j.failed, { version: j.version ?? '?', reason }].slice(-16),
          ...(j.installed && { installed: j.installed }),
        });
        pruneBinaries(p, [currentTarget(p)]);
        return;
      }
      if (j.phase === 'trial' && j.version !== AGENT_VERSION) {
        // Started without the preflight (or it was killed first): what runs is not the trial, so no trial.
        writeJournal(p, { ...j, phase: 'idle', starts: undefined, deadline: undefined });
        deps.log.info({ version: j.version, running: AGENT_VERSION }, 'agent update not switched; will try again');
        return;
      }
      if (j.phase === 'trial')
        deps.log.info({ version: j.version, deadline: new Date(j.deadline ?? 0).toISOString() }, 'agent on trial');
    },

    /** After each successful sync: a trial that has settled is committed. */
    onSynced(): void {
      const j = journal();
      if (!j || j.phase !== 'trial' || j.version !== AGENT_VERSION) return;
      if (Date.now() - startedAt < deps.settleMs) return;
      faultPoint('agent-commit', 'before');
      writeJournal(p, {
        phase: 'idle',
        floor: Math.max(j.floor, j.sequence ?? 0),
        failed: j.failed,
        from: j.from,
        to: j.to,
        version: j.version,
        ...(j.installed && { installed: j.installed }),
      });
      deps.store.event('agent.update.healthy', { from: j.from?.version ?? null, to: AGENT_VERSION });
      deps.log.info({ from: j.from?.version, to: AGENT_VERSION }, 'agent update healthy');
      out({ version: AGENT_VERSION, rolloutId: j.rolloutId ?? null }, 'installed-healthy');
      pruneBinaries(p, [currentTarget(p), j.from?.path]);
    },

    /** A trial past its deadline with no healthy report: put the previous executable back and restart. */
    tick(): void {
      const j = journal();
      if (!j || j.phase !== 'trial' || j.version !== AGENT_VERSION || !j.from) return;
      if (j.deadline === undefined || Date.now() <= j.deadline) return;
      const reason = `agent ${j.version} did not report healthy by ${new Date(j.deadline).toISOString()}`;
      pointCurrent(p, fileFacts(j.from.path) ? j.from.path : (j.installed?.path ?? j.from.path));
      writeJournal(p, { ...j, phase: 'reverted', reason, failure: 'rolled-back' });
      deps.restart(reason);
    },

    /** Bring the agent to the shore's `tender-agent` target, if any. */
    async reconcile(t: Target | undefined, desired: DesiredState | undefined): Promise<void> {
      if (!t || !deps.source) return;
      const j = journal();
      if (!j || j.phase !== 'idle') return;
      if (t.version === AGENT_VERSION) {
        out(t, 'installed-healthy');
        return;
      }
      const failed = j.failed.find((f) => f.version === t.version);
      if (failed) {
        out(t, 'failed', 'rolled-back', failed.reason);
        return;
      }
      if (t.sequence <= j.floor) {
        refuse(t, `agent ${t.version} (#${t.sequence}) is older than the agent installed here (#${j.floor})`, true);
        return;
      }
      if (!runningFromCurrent()) {
        refuse(
          t,
          `this agent (${deps.self}) was not started from ${p.current} (the tender-agent unit's ExecStart); ` +
            'reinstall with `tender install` to enable self-update',
          false,
        );
        return;
      }
      const m = await acceptManifest(t, j);
      if (!m) return;
      out(t, 'downloading', undefined);
      await seedFromSelf();
      try {
        await deps.source.transfer(m);
      } catch (err) {
        if (err instanceof TransferDeferred) return;
        throw err;
      }
      let path: string;
      try {
        path = await assemble(m);
      } catch (err) {
        if (err instanceof ChunkError) throw new SelfUpdateError(errorMessage(err));
        throw err;
      }
      const bad = await precheck(path, m.version);
      if (bad) {
        rmSync(path, { force: true });
        refuse(t, `agent ${t.version} refused: ${bad}`, true);
        return;
      }
      const w = switchWindow(desired, deps.now());
      if (!w.open) {
        out(t, 'waiting-for-window', undefined, w.reason);
        return;
      }
      const from = { version: AGENT_VERSION, path: realpathSync(deps.self) };
      writeJournal(p, {
        ...j,
        phase: 'trial',
        version: m.version,
        sequence: m.sequence,
        rolloutId: t.rolloutId,
        from,
        to: { version: m.version, path },
        // The local clock, as the preflight reads it (it has no hub to correct it).
        deadline: Date.now() + TRIAL_MS,
        starts: 0,
        reason: undefined,
        failure: undefined,
      });
      // Said before the link moves: the process may end any moment after it (kill -9, power cut).
      deps.store.event('agent.update.switching', { from: AGENT_VERSION, to: m.version });
      faultPoint('agent-switch', 'before');
      pointCurrent(p, path);
      faultPoint('agent-switch', 'after');
      deps.log.info({ from: AGENT_VERSION, to: m.version }, 'agent executable switched; restarting into it');
      deps.restart(`switched to agent ${m.version}`);
    },
  };
  return api;
}

export type SelfUpdater = ReturnType<typeof createSelfUpdater>;

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}
