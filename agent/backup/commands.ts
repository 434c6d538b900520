import { createReadStream, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { positional, requiredOpt, stringOpt, type Command, type CommandContext } from '../../shared/cli.js';
import { TenderError } from '../../shared/errors.js';
import { createDockerEngine } from '../../shared/docker.js';
import pino from 'pino';
import { sealStream } from '../../shared/trust/sealed-box.js';
import { DEFAULT_CONFIG_PATH, vesselPaths } from '../config.js';
import { loadTrustedRoot } from '../enrol.js';
import { openStateStore } from '../state-store.js';
import { crewConfig, localActor } from '../crew/crew-commands.js';
import type { BackupRow } from './backup-db.js';
import { boardPolicy, installPolicy } from './board-policies.js';
import { checkBackupFile } from './backup-file.js';
import type { BackupDeps } from './context.js';
import { importBackup } from './import-backup.js';
import { recoverBackups, restoreBackup } from './restore.js';
import { mb, runBackup } from './run-backup.js';
import { openBackups } from './setup.js';
import { verifyBackup } from './verify.js';

/** Crew commands for backups: all on board, no link needed. */
export class BackupCommandError extends TenderError {}

const CONFIG_OPTION = {
  config: { type: 'string' as const, description: 'agent config file', default: DEFAULT_CONFIG_PATH },
};

/** Backups for a crew command, which acts as the owner of the state from here on (files stay the agent's). */
async function withBackups<T>(ctx: CommandContext, fn: (d: BackupDeps, actor: string) => Promise<T>): Promise<T> {
  // Who typed the command, taken before acting as the state's owner.
  const actor = localActor(ctx.env);
  const config = crewConfig(ctx);
  const store = openStateStore(vesselPaths(config.dataDir), { outboxCapBytes: config.telemetry.outboxCapBytes });
  const root = loadTrustedRoot(config.dataDir);
  const d = openBackups({
    config,
    store,
    docker: createDockerEngine(),
    root: () => root,
    // stderr, and only errors by default: stdout carries the answer (--json stays parseable), and a
    // failure is already the command's one line.
    log: pino({ name: 'backup', level: ctx.env.TENDER_LOG_LEVEL ?? 'error' }, pino.destination(2)),
  });
  try {
    return await fn(d, actor);
  } finally {
    d.close();
    store.close();
  }
}

export const policyInstall: Command = {
  path: ['policy', 'install'],
  args: 'FILE',
  summary: 'on board: install a signed backup policy (verified against the trusted root; no link needed)',
  options: CONFIG_OPTION,
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new BackupCommandError(
        `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    return withBackups(ctx, async (d, actor) => {
      try {
        const r = installPolicy(d.db, d.root(), bytes, { vessel: d.vessel, services: d.services, now: d.now() });
        if (r.installed) d.event('policy.installed', { policy: r.policy.name, sequence: r.policy.sequence, by: actor });
        if (r.retired) d.event('policy.retired', { policy: r.policy.name, sequence: r.policy.sequence, by: actor });
        return { name: r.policy.name, sequence: r.policy.sequence, installed: r.installed, note: r.note };
      } catch (err) {
        d.event('policy.refused', { file, reason: (err as Error).message });
        throw err;
      }
    });
  },
  human: (r: { name: string; sequence: number; installed: boolean; note: string }) =>
    r.installed ? `installed policy ${r.name} #${r.sequence}${r.note ? ` (${r.note})` : ''}` : r.note,
};

interface PolicyView {
  name: string;
  sequence: number;
  target: string;
  method: string;
  schedule: string;
  retention: string;
  ship: string;
  lastGood: { id: string; at: string; bytes: number } | null;
  alarm: string | null;
  problem?: string;
}

export const policyList: Command = {
  path: ['policy', 'list'],
  summary: 'on board: the backup policies this vessel holds, their last good backup and any alarm',
  options: CONFIG_OPTION,
  async run(ctx): Promise<{ policies: PolicyView[] }> {
    return withBackups(ctx, async (d) => {
      const alarms = new Map(d.db.alarms().map((a) => [a.policy, a]));
      const policies = d.db.policies().map((row): PolicyView => {
        const good = d.db.takenBackups(row.name)[0];
        const base = {
          name: row.name,
          sequence: row.sequence,
          lastGood: good ? { id: good.id, at: new Date(good.startedAt).toISOString(), bytes: good.bytes! } : null,
          alarm: alarms.get(row.name) ? `${alarms.get(row.name)!.kind}: ${alarms.get(row.name)!.reason}` : null,
        };
        try {
          const p = boardPolicy(d.db, d.root(), row.name);
          return {
            ...base,
            target: `${p.target.app}/${p.target.service}`,
            method: p.method.type,
            schedule: p.schedule,
            retention: `${p.retention.count} / ${Math.round(p.retention.maxAgeSeconds / 86400)}d`,
            ship: p.ashore.ship,
          };
        } catch (err) {
          return {
            ...base,
            target: '?',
            method: '?',
            schedule: '?',
            retention: '?',
            ship: '?',
            problem: (err as Error).message,
          };
        }
      });
      return { policies };
    });
  },
  human: (r: { policies: PolicyView[] }) =>
    r.policies.length === 0
      ? 'no backup policies on board'
      : r.policies
          .map(
            (p) =>
              `${p.name} #${p.sequence}: ${p.method} of ${p.target} at "${p.schedule}" UTC, ` +
              `keep ${p.retention}, ship ${p.ship}; ` +
              `last good ${p.lastGood ? `${p.lastGood.id} (${mb(p.lastGood.bytes)})` : 'none'}` +
              `${p.alarm ? `\n  ALARM ${p.alarm}` : ''}${p.problem ? `\n  REFUSED ${p.problem}` : ''}`,
          )
          .join('\n'),
};

const view = (b: BackupRow) => ({
  id: b.id,
  policy: b.policy,
  kind: b.kind,
  state: b.state,
  startedAt: new Date(b.startedAt).toISOString(),
  seconds: b.finishedAt ? (b.finishedAt - b.startedAt) / 1000 : null,
  bytes: b.bytes,
  rawBytes: b.rawBytes,
  sha256: b.sha256,
  file: b.file,
  verifiedAt: b.verifiedAt ? new Date(b.verifiedAt).toISOString() : null,
  reason: b.reason,
});
type BackupView = ReturnType<typeof view>;
interface RestoreView {
  id: number;
  backup: string;
  state: string;
  safety: string | null;
  actor: string;
  startedAt: string;
  reason: string | null;
}

export const backupList: Command = {
  path: ['backup', 'list'],
  summary: 'backups kept on board, newest first, with checksum, size and result; and the last restores',
  options: { ...CONFIG_OPTION, policy: { type: 'string', description: 'only this policy' } },
  async run(ctx): Promise<{ backups: BackupView[]; restores: RestoreView[] }> {
    const only = stringOpt(ctx, 'policy');
    return withBackups(ctx, async (d) => {
      await recoverBackups(d);
      return {
        backups: d.db
          .backups()
          .filter((b) => !only || b.policy === only)
          .map(view),
        restores: d.db
          .recentRestores(5)
          .filter((r) => !only || r.policy === only)
          .map((r) => ({
            id: r.id,
            backup: r.backupId,
            state: r.state,
            safety: r.safetyId,
            actor: r.actor,
            startedAt: new Date(r.startedAt).toISOString(),
            reason: r.reason,
          })),
      };
    });
  },
  human: (r: { backups: BackupView[]; restores: RestoreView[] }) => {
    const lines = r.backups.map(
      (b) =>
        `${b.id.padEnd(40)} ${b.kind.padEnd(11)} ${b.state.padEnd(7)} ` +
        `${b.bytes === null ? '' : mb(b.bytes).padStart(10)}` +
        `${b.sha256 ? `  sha256 ${b.sha256.slice(0, 12)}` : ''}` +
        `${b.verifiedAt ? '  verified' : ''}${b.reason ? `  (${b.reason})` : ''}`,
    );
    const last = r.restores[0];
    if (last)
      lines.push(
        `last restore: ${last.backup} ${last.state} at ${last.startedAt}${last.reason ? ` (${last.reason})` : ''}`,
      );
    return lines.length ? lines.join('\n') : 'no backups on board';
  },
};

export const backupRun: Command = {
  path: ['backup', 'run'],
  args: 'POLICY',
  summary: 'take a backup by POLICY now (refused while another run or restore of it is going on)',
  options: CONFIG_OPTION,
  async run(ctx) {
    const name = positional(ctx, 0, 'POLICY');
    return withBackups(ctx, async (d) => {
      await recoverBackups(d);
      return view(await runBackup(d, name, { kind: 'manual' }));
    });
  },
  human: (b: BackupView) => `backup ${b.id}: ${mb(b.bytes ?? 0)} in ${b.seconds}s, sha256 ${b.sha256}`,
};

export const backupVerify: Command = {
  path: ['backup', 'verify'],
  args: 'ID',
  summary: 'check a backup: its sha256, and that it restores into a scratch container (nothing live touched)',
  options: CONFIG_OPTION,
  async run(ctx) {
    const id = positional(ctx, 0, 'ID');
    return withBackups(ctx, (d) => verifyBackup(d, id));
  },
  human: (r: { id: string; sha256: string; scratch: string; seconds: number }) =>
    `backup ${r.id} verifies: sha256 ${r.sha256.slice(0, 16)} matches; ${r.scratch} (${r.seconds.toFixed(1)}s)`,
};

export const backupRestore: Command = {
  path: ['backup', 'restore'],
  args: 'ID',
  summary: "put a backup's data back into its service: a safety copy first, then restore, health gate, or undo",
  options: CONFIG_OPTION,
  async run(ctx) {
    const id = positional(ctx, 0, 'ID');
    return withBackups(ctx, (d, actor) => restoreBackup(d, id, actor));
  },
  human: (r: { backup: string; safety: string | null; seconds: number }) =>
    `restored ${r.backup} through the health gate in ${r.seconds.toFixed(1)}s; the ` +
    `data before it is kept as ${r.safety}`,
};

export const backupExport: Command = {
  path: ['backup', 'export'],
  args: 'ID',
  summary: "write a backup to a file to carry ashore, sealed to the policy's shore key when it names one",
  options: { ...CONFIG_OPTION, out: { type: 'string', description: 'the file to write' } },
  async run(ctx) {
    const id = positional(ctx, 0, 'ID');
    const out = requiredOpt(ctx, 'out');
    return withBackups(ctx, async (d) => {
      const b = d.db.backup(id);
      if (!b) throw new BackupCommandError(`no backup ${JSON.stringify(id)} on board (see: tender backup list)`);
      await checkBackupFile(b);
      const policy = boardPolicy(d.db, d.root(), b.policy);
      const seal = policy.encryption;
      try {
        const dest = createWriteStream(out, { flags: 'wx', mode: 0o600 });
        if (seal) await pipeline(createReadStream(b.file), sealStream(seal.to), dest);
        else await pipeline(createReadStream(b.file), dest);
      } catch (err) {
        rmSync(out, { force: true });
        throw err;
      }
      return { id, out, sealedTo: seal?.keyId ?? null, compression: b.compression, sha256: b.sha256 };
    });
  },
  human: (r: { id: string; out: string; sealedTo: string | null }) =>
    `backup ${r.id} written to ` +
    `${r.out}${r.sealedTo ? ` sealed to shore key ${r.sealedTo}` : ' (not sealed: the policy names no shore key)'}`,
};

export const backupImport: Command = {
  path: ['backup', 'import'],
  args: 'FILE',
  summary: 'bring a dump back on board (from `tender backup download` ashore) as a backup of POLICY, to restore',
  details: `FILE is the dump as \`tender backup download\` (or \`tender backup open\`) wrote it ashore, plain or
gzip/zstd-compressed. It must have the shape the policy's method restores (a pg_dump archive, an SQLite
database, a tar) and, with --sha256, the checksum the download printed. It is kept as a board backup of
kind "imported": \`tender backup verify\` and \`tender backup restore\` take its ID. No link needed.`,
  options: {
    ...CONFIG_OPTION,
    policy: { type: 'string', description: 'the board policy whose service the dump restores into' },
    sha256: { type: 'string', description: "the dump's sha256 as `tender backup download` printed it" },
  },
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    const policy = requiredOpt(ctx, 'policy');
    const sha256 = stringOpt(ctx, 'sha256');
    return withBackups(ctx, async (d, actor) => view(await importBackup(d, file, { policy, sha256, actor })));
  },
  human: (r: BackupView) =>
    `imported ${r.id} for policy ${r.policy} (${mb(r.rawBytes ?? 0)} dump); restore it with ` +
    `\`tender backup restore ${r.id}\``,
};

export const BACKUP_COMMANDS = [
  policyInstall,
  policyList,
  backupList,
  backupRun,
  backupVerify,
  backupRestore,
  backupExport,
  backupImport,
];
