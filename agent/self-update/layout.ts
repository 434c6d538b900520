import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { fsyncDir, writeFileAtomic } from '../../shared/fs-atomic.js';
import { describeZodError } from '../../shared/validation.js';
import { TenderError } from '../../shared/errors.js';

/**
 * Where the agent's own executables live on board, under the data directory (the `tender` user may write
 * there; /usr/local/bin belongs to root and the installer):
 *
 *   self/current      symlink to the executable the tender-agent unit starts (ExecStart)
 *   self/bin/…        executables staged by self-update, named by version and digest
 *   self/update.json  the self-update journal: one small file, replaced atomically at every step
 *
 * The installed executable (/usr/local/bin/tender) is never written by an update: it runs the unit's
 * preflight (ExecStartPre) and is the last fallback when nothing else is runnable.
 */
export class SelfUpdateError extends TenderError {}

export interface SelfPaths {
  dir: string;
  current: string;
  bin: string;
  journal: string;
}

export function selfPaths(dataDir: string): SelfPaths {
  const dir = join(dataDir, 'self');
  return { dir, current: join(dir, 'current'), bin: join(dir, 'bin'), journal: join(dir, 'update.json') };
}

const exeSchema = z.strictObject({ version: z.string().max(64), path: z.string().startsWith('/').max(4096) });

/**
 * idle: nothing under way. trial: `current` was (or is about to be) switched to `to`; the new agent must
 * come up healthy before `deadline` within `maxStarts` starts, else the preflight (or the new agent itself)
 * puts `from` back and writes reverted. reverted: waiting for the agent that runs again to report it.
 */
export const updateJournalSchema = z.strictObject({
  phase: z.enum(['idle', 'trial', 'reverted']),
  version: z.string().max(64).optional(),
  sequence: z.number().int().min(0).optional(),
  rolloutId: z.number().int().nullable().optional(),
  from: exeSchema.optional(),
  to: exeSchema.optional(),
  /** Epoch ms: the new agent is reverted if it has not reported healthy by then. */
  deadline: z.number().int().optional(),
  /** Starts of the new executable counted by the preflight during the trial. */
  starts: z.number().int().min(0).optional(),
  reason: z.string().max(1000).optional(),
  /** How the trial failed, for the rollout: a crash loop, or no healthy report in time. */
  failure: z.enum(['crashed-after-flip', 'rolled-back']).optional(),
  /** The highest sequence of an agent release that came up healthy here: older ones are refused. */
  floor: z.number().int().min(0).default(0),
  /** Versions that failed here (not tried again): newest last, a few kept. */
  failed: z
    .array(z.strictObject({ version: z.string().max(64), reason: z.string().max(1000) }))
    .max(16)
    .default([]),
  /** The installed executable as last seen (size and mtime): when the installer replaces it, it wins. */
  installed: z.strictObject({ path: z.string(), size: z.number(), mtimeMs: z.number() }).optional(),
});
export type UpdateJournal = z.infer<typeof updateJournalSchema>;

export function readJournal(p: SelfPaths): UpdateJournal {
  if (!existsSync(p.journal)) return { phase: 'idle', floor: 0, failed: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(p.journal, 'utf8'));
  } catch (err) {
    throw new SelfUpdateError(`${p.journal}: not JSON (${(err as Error).message})`);
  }
  const r = updateJournalSchema.safeParse(doc);
  if (!r.success) throw new SelfUpdateError(`${p.journal}: ${describeZodError(r.error, '(top level)')}`);
  return r.data;
}

export function writeJournal(p: SelfPaths, j: UpdateJournal): void {
  writeFileAtomic(p.journal, JSON.stringify(j, null, 1), 0o660);
}

/** Point `current` at `target` in one rename: a crash leaves the old link or the new one, never none. */
export function pointCurrent(p: SelfPaths, target: string): void {
  const tmp = join(p.dir, `.current.${randomBytes(4).toString('hex')}`);
  symlinkSync(target, tmp);
  renameSync(tmp, p.current);
  fsyncDir(p.dir);
}

/** Where `current` leads (resolved), or undefined when it is missing or dangling. */
export function currentTarget(p: SelfPaths): string | undefined {
  try {
    lstatSync(p.current);
    return realpathSync(p.current);
  } catch {
    return undefined;
  }
}

export function ensureSelfDirs(p: SelfPaths): void {
  // No setgid bit in the mode: the agent's unit has RestrictSUIDSGID=yes, which refuses such a mkdir with
  // EPERM. The state folder is setgid (2770), so the new folders get its group and the bit from it anyway.
  mkdirSync(p.bin, { recursive: true, mode: 0o770 });
}

/** Keep the staged executables named in `keep` (current and previous); delete older ones. */
export function pruneBinaries(p: SelfPaths, keep: (string | undefined)[]): void {
  const wanted = new Set(keep.filter((k): k is string => !!k).map((k) => basename(k)));
  let names: string[];
  try {
    names = readdirSync(p.bin);
  } catch {
    return;
  }
  for (const n of names) if (!wanted.has(n)) rmSync(join(p.bin, n), { force: true });
}

export function fileFacts(path: string): { size: number; mtimeMs: number } | undefined {
  try {
    const s = statSync(path);
    return { size: s.size, mtimeMs: Math.floor(s.mtimeMs) };
  } catch {
    return undefined;
  }
}
