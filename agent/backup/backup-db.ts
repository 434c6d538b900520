import { openDatabase, type Db, type Migration } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';
import { pidAlive, processStart } from '../release/journal.js';

/**
 * Backup bookkeeping in its own SQLite file (DATA/backups.db, WAL, synchronous=FULL): the installed
 * policies and where each schedule stands, every backup with its checksum and result, the per-policy lock
 * that keeps two runs (or a run and a restore) of one policy apart across processes, the restore journal,
 * and the alarms `tender status` shows. Apart from agent.db so its schema moves on its own.
 */
export class BackupBusyError extends TenderError {
  constructor(message: string) {
    super(message, 'backup_busy', 1, 409);
  }
}

const MIGRATIONS: Migration[] = [
  {
    id: 1,
    name: 'backups',
    sql: `
      CREATE TABLE policies (
        name TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        installed_at INTEGER NOT NULL,
        -- The newest schedule slot claimed by a run (vessel clock, ms); null: none yet.
        last_slot INTEGER
      );
      CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        policy TEXT NOT NULL,
        policy_sequence INTEGER NOT NULL,
        method TEXT NOT NULL,
        kind TEXT NOT NULL,
        file TEXT NOT NULL,
        compression TEXT NOT NULL,
        state TEXT NOT NULL,
        bytes INTEGER,
        raw_bytes INTEGER,
        sha256 TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        reason TEXT,
        pid INTEGER NOT NULL,
        pid_start TEXT NOT NULL,
        -- For a scheduled run: the slot it claimed and the one before, given back if it is interrupted.
        slot INTEGER,
        prev_slot INTEGER,
        -- A container paused or stopped for a consistent copy, to be brought back after a crash.
        quiesced TEXT,
        verified_at INTEGER
      );
      CREATE INDEX backups_policy ON backups (policy, state, started_at);
      CREATE TABLE locks (
        policy TEXT PRIMARY KEY,
        what TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE TABLE restores (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        backup_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        state TEXT NOT NULL,
        safety_id TEXT,
        reason TEXT,
        actor TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE TABLE restore_steps (
        restore_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        phase TEXT NOT NULL,
        step TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (restore_id, idx)
      );
      CREATE TABLE alarms (
        policy TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        since INTEGER NOT NULL
      );
    `,
  },
  {
    id: 2,
    name: 'backups ashore',
    sql: `
      -- Per shore seal key, the vessel's secret that keys its sealed chunks (sent ashore only sealed).
      CREATE TABLE seal_secrets (
        key_id TEXT PRIMARY KEY,
        secret BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      -- Each backup's trip ashore: pending until the hub has recorded it; skipped when a newer one
      -- replaced it (ship: latest); bytes counts every attempt.
      CREATE TABLE shipments (
        backup_id TEXT PRIMARY KEY,
        policy TEXT NOT NULL,
        state TEXT NOT NULL,
        chunks INTEGER,
        uploaded_chunks INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        started_at INTEGER,
        finished_at INTEGER
      );
      -- Bytes sent ashore per policy and UTC day, against the policy's budget.
      CREATE TABLE ship_days (
        policy TEXT NOT NULL,
        day TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (policy, day)
      );
    `,
  },
  {
    id: 3,
    name: 'retired policies',
    sql: `
      -- A policy retired by a signed retirement (tender policy retire): gone from board, and no sequence
      -- at or below this one installs again (a replayed older policy cannot bring it back).
      CREATE TABLE retired_policies (
        name TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL,
        retired_at INTEGER NOT NULL
      );
    `,
  },
];

export interface Shipment {
  backupId: string;
  policy: string;
  state: 'pending' | 'done' | 'skipped';
  chunks: number | null;
  uploadedChunks: number;
  bytes: number;
  attempts: number;
  reason: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

// imported: a dump brought back on board (tender backup import), not taken here.
export type BackupKind = 'scheduled' | 'manual' | 'pre-restore' | 'imported';
export type BackupState = 'running' | 'ok' | 'failed' | 'removed';

export interface BackupRow {
  id: string;
  policy: string;
  policySequence: number;
  method: string;
  kind: BackupKind;
  file: string;
  compression: 'zstd' | 'gzip' | 'none';
  state: BackupState;
  bytes: number | null;
  rawBytes: number | null;
  sha256: string | null;
  startedAt: number;
  finishedAt: number | null;
  reason: string | null;
  pid: number;
  pidStart: string;
  slot: number | null;
  prevSlot: number | null;
  quiesced: string | null;
  verifiedAt: number | null;
}

export type RestoreStep = 'safety' | 'stop' | 'apply' | 'start' | 'gate';
export interface RestoreRow {
  id: number;
  backupId: string;
  policy: string;
  state: 'running' | 'done' | 'undone' | 'failed';
  safetyId: string | null;
  reason: string | null;
  actor: string;
  pid: number;
  pidStart: string;
  startedAt: number;
  finishedAt: number | null;
}
export interface RestoreJournalStep {
  idx: number;
  phase: 'forward' | 'undo';
  step: RestoreStep;
  done: boolean;
}

export interface Alarm {
  policy: string;
  kind: 'failed' | 'missed' | 'refused';
  reason: string;
  since: number;
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
function fromRow<T>(r: Record<string, unknown> | undefined): T | undefined {
  if (!r) return undefined;
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [camel(k), v])) as T;
}

export type BackupDb = ReturnType<typeof openBackupDb>;

export function backupDbPath(dataDir: string): string {
  return `${dataDir}/backups.db`;
}

export function openBackupDb(path: string) {
  return createBackupDb(openDatabase(path, MIGRATIONS));
}

export function createBackupDb(db: Db) {
  const q = {
    policy: db.prepare('SELECT * FROM policies WHERE name = ?'),
    policies: db.prepare('SELECT * FROM policies ORDER BY name'),
    upsertPolicy: db.prepare(
      `INSERT INTO policies (name, sequence, envelope, installed_at, last_slot) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET sequence = excluded.sequence, envelope = excluded.envelope,
         installed_at = excluded.installed_at`,
    ),
    setSlot: db.prepare('UPDATE policies SET last_slot = ? WHERE name = ?'),
    giveBackSlot: db.prepare('UPDATE policies SET last_slot = ? WHERE name = ? AND last_slot = ?'),
    backup: db.prepare('SELECT * FROM backups WHERE id = ?'),
    backups: db.prepare("SELECT * FROM backups WHERE state != 'removed' ORDER BY started_at DESC, id DESC"),
    ofPolicy: db.prepare(
      "SELECT * FROM backups WHERE policy = ? AND state = 'ok' AND kind != 'pre-restore' ORDER BY started_at DESC",
    ),
    running: db.prepare("SELECT * FROM backups WHERE state = 'running'"),
    insertBackup: db.prepare(
      `INSERT INTO backups (id, policy, policy_sequence, method, kind, file, compression, state, started_at, pid,
         pid_start, slot, prev_slot) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`,
    ),
    finishOk: db.prepare(
      "UPDATE backups SET state = 'ok', bytes = ?, raw_bytes = ?, sha256 = ?, finished_at = ?, file = ? WHERE id = ?",
    ),
    finishFailed: db.prepare("UPDATE backups SET state = 'failed', reason = ?, finished_at = ? WHERE id = ?"),
    setQuiesced: db.prepare('UPDATE backups SET quiesced = ? WHERE id = ?'),
    markRemoved: db.prepare("UPDATE backups SET state = 'removed' WHERE id = ?"),
    forgetImport: db.prepare("DELETE FROM backups WHERE id = ? AND kind = 'imported'"),
    verified: db.prepare('UPDATE backups SET verified_at = ? WHERE id = ?'),
    lock: db.prepare('SELECT * FROM locks WHERE policy = ?'),
    takeLock: db.prepare(
      `INSERT INTO locks (policy, what, pid, pid_start, at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(policy) DO UPDATE SET what = excluded.what, pid = excluded.pid, pid_start = excluded.pid_start,
         at = excluded.at`,
    ),
    dropLock: db.prepare('DELETE FROM locks WHERE policy = ? AND pid = ? AND pid_start = ?'),
    restore: db.prepare('SELECT * FROM restores WHERE id = ?'),
    runningRestores: db.prepare("SELECT * FROM restores WHERE state = 'running' ORDER BY id"),
    recentRestores: db.prepare('SELECT * FROM restores ORDER BY id DESC LIMIT ?'),
    insertRestore: db.prepare(
      'INSERT INTO restores (backup_id, policy, state, actor, pid, pid_start, ' +
        "started_at) VALUES (?, ?, 'running', ?, ?, ?, ?)",
    ),
    setSafety: db.prepare('UPDATE restores SET safety_id = ? WHERE id = ?'),
    adoptRestore: db.prepare('UPDATE restores SET pid = ?, pid_start = ? WHERE id = ?'),
    finishRestore: db.prepare('UPDATE restores SET state = ?, reason = ?, finished_at = ? WHERE id = ?'),
    insertStep: db.prepare('INSERT INTO restore_steps (restore_id, idx, phase, step) VALUES (?, ?, ?, ?)'),
    steps: db.prepare('SELECT idx, phase, step, done FROM restore_steps WHERE restore_id = ? ORDER BY idx'),
    maxStep: db.prepare('SELECT MAX(idx) AS m FROM restore_steps WHERE restore_id = ?'),
    stepDone: db.prepare('UPDATE restore_steps SET done = 1 WHERE restore_id = ? AND idx = ?'),
    alarms: db.prepare('SELECT * FROM alarms ORDER BY policy'),
    setAlarm: db.prepare(
      `INSERT INTO alarms (policy, kind, reason, since) VALUES (?, ?, ?, ?)
       ON CONFLICT(policy) DO UPDATE SET kind = excluded.kind, reason = excluded.reason,
         since = CASE WHEN alarms.kind = excluded.kind THEN alarms.since ELSE excluded.since END`,
    ),
    clearAlarm: db.prepare('DELETE FROM alarms WHERE policy = ?'),
    clearAlarmKind: db.prepare('DELETE FROM alarms WHERE policy = ? AND kind = ?'),
    removePolicy: db.prepare('DELETE FROM policies WHERE name = ?'),
    retired: db.prepare('SELECT sequence FROM retired_policies WHERE name = ?'),
    retire: db.prepare(
      `INSERT INTO retired_policies (name, sequence, retired_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET sequence = excluded.sequence, retired_at = excluded.retired_at`,
    ),
    sealSecret: db.prepare('SELECT secret FROM seal_secrets WHERE key_id = ?'),
    addSealSecret: db.prepare('INSERT OR IGNORE INTO seal_secrets (key_id, secret, created_at) VALUES (?, ?, ?)'),
    shipment: db.prepare('SELECT * FROM shipments WHERE backup_id = ?'),
    shipments: db.prepare('SELECT * FROM shipments ORDER BY started_at DESC LIMIT ?'),
    beginShipment: db.prepare(
      `INSERT INTO shipments (backup_id, policy, state, started_at, attempts) VALUES (?, ?, 'pending', ?, 1)
       ON CONFLICT(backup_id) DO UPDATE SET attempts = shipments.attempts + 1`,
    ),
    shipProgress: db.prepare(
      'UPDATE shipments SET chunks = ?, uploaded_chunks = uploaded_chunks + ?, bytes = bytes + ? WHERE backup_id = ?',
    ),
    finishShipment: db.prepare('UPDATE shipments SET state = ?, reason = ?, finished_at = ? WHERE backup_id = ?'),
    noteShipment: db.prepare('UPDATE shipments SET reason = ? WHERE backup_id = ?'),
    skipShipment: db.prepare(
      `INSERT INTO shipments (backup_id, policy, state, reason, finished_at) VALUES (?, ?, 'skipped', ?, ?)
       ON CONFLICT(backup_id) DO UPDATE
       SET state = 'skipped', reason = excluded.reason, finished_at = excluded.finished_at`,
    ),
    dayBytes: db.prepare('SELECT bytes FROM ship_days WHERE policy = ? AND day = ?'),
    addDayBytes: db.prepare(
      `INSERT INTO ship_days (policy, day, bytes) VALUES (?, ?, ?)
       ON CONFLICT(policy, day) DO UPDATE SET bytes = ship_days.bytes + excluded.bytes`,
    ),
  };
  const me = () => ({ pid: process.pid, start: processStart(process.pid) });

  const api = {
    db,
    close: () => db.close(),

    policy: (name: string) =>
      fromRow<{ name: string; sequence: number; envelope: Buffer; installedAt: number; lastSlot: number | null }>(
        q.policy.get(name) as Record<string, unknown>,
      ),
    policies: () =>
      (q.policies.all() as Record<string, unknown>[]).map((r) =>
        fromRow<{ name: string; sequence: number; envelope: Buffer; installedAt: number; lastSlot: number | null }>(r)!,
      ),
    installPolicy(name: string, sequence: number, envelope: Buffer, at: number, firstSlot: number | null): void {
      q.upsertPolicy.run(name, sequence, envelope, at, firstSlot);
    },
    setSlot: (name: string, slot: number) => q.setSlot.run(slot, name),
    /** A policy the hub says, signed, no longer names this vessel: its backups on board stay. */
    removePolicy(name: string): void {
      db.transaction(() => {
        q.removePolicy.run(name);
        q.clearAlarm.run(name);
      }).immediate();
    },

    /** The sequence a signed retirement of this policy carried, if it was retired on board. */
    retiredSequence(name: string): number | undefined {
      return (q.retired.get(name) as { sequence: number } | undefined)?.sequence;
    },
    /** Retire a policy: removed with its alarm, and its sequence remembered (its backups on board stay). */
    retirePolicy(name: string, sequence: number, at: number): void {
      db.transaction(() => {
        q.removePolicy.run(name);
        q.clearAlarm.run(name);
        q.retire.run(name, sequence, at);
      }).immediate();
    },

    /** The secret keying sealed chunks to one shore key: made once, then the same (so chunks dedupe). */
    sealSecret(keyId: string, make: () => Buffer, at: number): Buffer {
      q.addSealSecret.run(keyId, make(), at);
      return (q.sealSecret.get(keyId) as { secret: Buffer }).secret;
    },
    shipment: (backupId: string) => fromRow<Shipment>(q.shipment.get(backupId) as Record<string, unknown>),
    shipments: (n = 20) => (q.shipments.all(n) as Record<string, unknown>[]).map((r) => fromRow<Shipment>(r)!),
    beginShipment: (backupId: string, policy: string, at: number) => q.beginShipment.run(backupId, policy, at),
    /** Bytes sent count against the policy's day at once, so a kill -9 cannot send them twice unbudgeted. */
    shipProgress(
      backupId: string,
      policy: string,
      day: string,
      r: { chunks: number; uploaded: number; bytes: number },
    ) {
      db.transaction(() => {
        q.shipProgress.run(r.chunks, r.uploaded, r.bytes, backupId);
        if (r.bytes > 0) q.addDayBytes.run(policy, day, r.bytes);
      })();
    },
    finishShipment: (backupId: string, state: 'done' | 'pending', reason: string | null, at: number | null) =>
      q.finishShipment.run(state, reason?.slice(0, 1000) ?? null, at, backupId),
    noteShipment: (backupId: string, reason: string) => q.noteShipment.run(reason.slice(0, 1000), backupId),
    skipShipment: (backupId: string, policy: string, reason: string, at: number) =>
      q.skipShipment.run(backupId, policy, reason, at),
    dayBytes: (policy: string, day: string) =>
      (q.dayBytes.get(policy, day) as { bytes: number } | undefined)?.bytes ?? 0,

    backup: (id: string) => fromRow<BackupRow>(q.backup.get(id) as Record<string, unknown>),
    backups: () => (q.backups.all() as Record<string, unknown>[]).map((r) => fromRow<BackupRow>(r)!),
    /** Good backups of a policy, newest first (pre-restore safety copies apart). */
    goodBackups: (policy: string) =>
      (q.ofPolicy.all(policy) as Record<string, unknown>[]).map((r) => fromRow<BackupRow>(r)!),
    /** Good backups taken on board (not imported): what goes ashore, and what "last good" means. */
    takenBackups: (policy: string) => api.goodBackups(policy).filter((b) => b.kind !== 'imported'),
    runningBackups: () => (q.running.all() as Record<string, unknown>[]).map((r) => fromRow<BackupRow>(r)!),

    /**
     * Take the policy's lock and record the run in one transaction: refused while another live process
     * holds it; a lock left by a dead process is taken over (its leftovers were recovered first).
     */
    beginBackup(b: {
      id: string;
      policy: string;
      policySequence: number;
      method: string;
      kind: BackupKind;
      file: string;
      compression: string;
      at: number;
      slot: number | null;
      prevSlot: number | null;
    }): void {
      db.transaction(() => {
        api.takeLockTx(b.policy, `backup ${b.id}`);
        const p = me();
        q.insertBackup.run(
          b.id,
          b.policy,
          b.policySequence,
          b.method,
          b.kind,
          b.file,
          b.compression,
          b.at,
          p.pid,
          p.start,
          b.slot,
          b.prevSlot,
        );
        if (b.slot !== null) q.setSlot.run(b.slot, b.policy);
      }).immediate();
    },
    /** An import refused half-way leaves no record: nothing was brought on board. */
    forgetImport(id: string): void {
      q.forgetImport.run(id);
    },
    finishBackupOk(id: string, r: { bytes: number; rawBytes: number; sha256: string; at: number; file: string }): void {
      q.finishOk.run(r.bytes, r.rawBytes, r.sha256, r.at, r.file, id);
    },
    finishBackupFailed(id: string, reason: string, at: number): void {
      q.finishFailed.run(reason.slice(0, 2000), at, id);
    },
    /** A scheduled run that never finished gives its slot back, so it runs once at the next start. */
    giveBackSlot(b: BackupRow): void {
      if (b.slot !== null) q.giveBackSlot.run(b.prevSlot, b.policy, b.slot);
    },
    setQuiesced: (id: string, what: string | null) => q.setQuiesced.run(what, id),
    markRemoved: (id: string) => q.markRemoved.run(id),
    markVerified: (id: string, at: number) => q.verified.run(at, id),

    /** Inside a transaction: take the policy lock or say who holds it. */
    takeLockTx(policy: string, what: string): void {
      const held = q.lock.get(policy) as { what: string; pid: number; pid_start: string } | undefined;
      const p = me();
      if (held && !(held.pid === p.pid && held.pid_start === p.start) && pidAlive(held.pid, held.pid_start))
        throw new BackupBusyError(`policy ${policy} is busy: ${held.what} (pid ${held.pid}); try again when it ends`);
      q.takeLock.run(policy, what, p.pid, p.start, Date.now());
    },
    lock(policy: string, what: string): void {
      db.transaction(() => api.takeLockTx(policy, what)).immediate();
    },
    unlock(policy: string): void {
      const p = me();
      q.dropLock.run(policy, p.pid, p.start);
    },
    /** Locks whose holder is gone (a kill -9): dropped; their work was recovered before this is called. */
    dropDeadLock(policy: string): void {
      const held = q.lock.get(policy) as { pid: number; pid_start: string } | undefined;
      if (held && !pidAlive(held.pid, held.pid_start)) q.dropLock.run(policy, held.pid, held.pid_start);
    },

    restore: (id: number) => fromRow<RestoreRow>(q.restore.get(id) as Record<string, unknown>),
    runningRestores: () => (q.runningRestores.all() as Record<string, unknown>[]).map((r) => fromRow<RestoreRow>(r)!),
    recentRestores: (n = 10) =>
      (q.recentRestores.all(n) as Record<string, unknown>[]).map((r) => fromRow<RestoreRow>(r)!),
    /** Journal a restore and all its forward steps before the first one acts. */
    beginRestore(backupId: string, policy: string, actor: string, steps: RestoreStep[]): number {
      return db
        .transaction(() => {
          api.takeLockTx(policy, `restore of ${backupId}`);
          const p = me();
          const id = Number(q.insertRestore.run(backupId, policy, actor, p.pid, p.start, Date.now()).lastInsertRowid);
          steps.forEach((s, i) => q.insertStep.run(id, i, 'forward', s));
          return id;
        })
        .immediate();
    },
    adoptRestore(id: number): void {
      const p = me();
      db.transaction(() => {
        const r = q.restore.get(id) as { policy: string };
        q.adoptRestore.run(p.pid, p.start, id);
        q.takeLock.run(r.policy, `recovery of restore ${id}`, p.pid, p.start, Date.now());
      }).immediate();
    },
    setSafety: (id: number, backupId: string) => q.setSafety.run(backupId, id),
    restoreSteps: (id: number): RestoreJournalStep[] =>
      (q.steps.all(id) as { idx: number; phase: 'forward' | 'undo'; step: RestoreStep; done: number }[]).map((s) => ({
        ...s,
        done: s.done === 1,
      })),
    addUndoSteps(id: number, steps: RestoreStep[]): RestoreJournalStep[] {
      return db.transaction(() => {
        const base = ((q.maxStep.get(id) as { m: number | null }).m ?? -1) + 1;
        steps.forEach((s, i) => q.insertStep.run(id, base + i, 'undo', s));
        return steps.map((step, i) => ({ idx: base + i, phase: 'undo' as const, step, done: false }));
      })();
    },
    stepDone: (id: number, idx: number) => q.stepDone.run(id, idx),
    finishRestore(id: number, state: RestoreRow['state'], reason: string | null): void {
      q.finishRestore.run(state, reason?.slice(0, 2000) ?? null, Date.now(), id);
    },

    alarms: () => (q.alarms.all() as Record<string, unknown>[]).map((r) => fromRow<Alarm>(r)!),
    setAlarm: (policy: string, kind: Alarm['kind'], reason: string, at: number) =>
      q.setAlarm.run(policy, kind, reason.slice(0, 1000), at),
    clearAlarm: (policy: string, kind?: Alarm['kind']) =>
      kind ? q.clearAlarmKind.run(policy, kind) : q.clearAlarm.run(policy),
  };
  return api;
}
