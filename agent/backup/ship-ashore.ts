import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { TenderError, errorMessage } from '../../shared/errors.js';
import { Chunker } from '../../shared/content/chunking.js';
import {
  chunkId,
  chunkSealKeys,
  compressStored,
  newChunkSecret,
  storedChunk,
  type ChunkSealKeys,
} from '../../shared/content/backup-chunks.js';
import {
  backupChunksMissingSchema,
  encodeChunkList,
  type BackupRecordBody,
  type SealedHeader,
} from '../../shared/protocol/backup-ashore.js';
import type { PolicyDocument } from '../../shared/protocol/backup-policy.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { encodeUploadPack, UPLOAD_ENTRY_HEADER_BYTES, type UploadEntry } from '../../shared/protocol/pack.js';
import { paths } from '../../shared/protocol/routes.js';
import { sealBytes } from '../../shared/trust/sealed-box.js';
import { sleep } from '../backoff.js';
import { faultPoint } from '../fault.js';
import { HubRefusedError, HubUnreachableError, type HubClient } from '../hub-client.js';
import type { BackupRow } from './backup-db.js';
import { boardPolicy } from './board-policies.js';
import { decompressor, type Compression } from './compression.js';
import type { BackupDeps } from './context.js';

/**
 * Backups ashore: each good backup a policy ships (`ship: latest | all`) is cut, from its raw dump, into
 * the content-defined chunks releases use; the hub is asked which of their ids it lacks (one request per
 * 50,000), and only those travel, in upload packs, paced to the vessel's cap, counted against the
 * policy's byte budget for the UTC day, and only while the link is cheap when the policy says so. Then
 * the backup's chunk list is recorded. Chunks are content-addressed and stored as they arrive, so a cut
 * link, a kill -9 or a reboot resumes by asking again: nothing received is sent twice, nothing is lost.
 * With a seal key each chunk is sealed before it leaves (backup-chunks.ts).
 */
export class ShipError extends TenderError {}

// Ids per "which do you lack" request: about 3.3 MB of JSON, a few seconds on a slow link.
const MISSING_BATCH = 50_000;
// Upload requests stay small enough that one cut costs little to send again.
export const DEFAULT_SHIP_PACK_BYTES = 1024 * 1024;
// A control request on a 0.2 Mbit/s link with 1.5 s round trips; a pack gets its size at the cap, doubled.
const CONTROL_TIMEOUT_MS = 60_000;

export interface ShipOptions {
  client: HubClient;
  /** Upload cap, bytes per second, held over the whole trip (0: uncapped). */
  bytesPerSecond: number;
  packBytes?: number;
  signal?: AbortSignal;
}

export interface ShipOutcome {
  backup: string;
  policy: string;
  result: 'shipped' | 'waiting' | 'failed';
  chunks?: number;
  uploadedChunks?: number;
  /** Bytes sent in this attempt: questions, packs and the chunk list. */
  bytes?: number;
  reason?: string;
}

class Stop extends Error {}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** One pass over everything due: returns what it did per backup. A hub that cannot be reached stops it quietly. */
export async function shipTick(d: BackupDeps, o: ShipOptions): Promise<ShipOutcome[]> {
  const out: ShipOutcome[] = [];
  for (const row of d.db.policies()) {
    if (o.signal?.aborted) break;
    let policy: PolicyDocument;
    try {
      policy = boardPolicy(d.db, d.root(), row.name);
    } catch {
      continue; // the schedule loop raises the alarm for a policy that no longer verifies
    }
    if (policy.ashore.ship === 'none') continue;
    const good = d.db.takenBackups(policy.name);
    const due = good.filter((b) => {
      const s = d.db.shipment(b.id)?.state;
      return s !== 'done' && s !== 'skipped';
    });
    let toShip: BackupRow[];
    if (policy.ashore.ship === 'latest') {
      const newest = good[0];
      for (const b of due)
        if (b !== newest) d.db.skipShipment(b.id, policy.name, `a newer backup (${newest?.id}) goes instead`, d.now());
      toShip = newest && due.includes(newest) ? [newest] : [];
    } else toShip = [...due].reverse();
    if (toShip.length && policy.ashore.onlyWhenCheap && !(d.linkCheap?.() ?? false)) {
      for (const b of toShip) out.push(waiting(d, b, policy, 'waiting for a link marked cheap (tender link cheap)'));
      continue;
    }
    for (const b of toShip) {
      const r = await shipOne(d, o, policy, b);
      out.push(r);
      if (r.result !== 'shipped') break;
    }
  }
  return out;
}

function waiting(d: BackupDeps, b: BackupRow, policy: PolicyDocument, reason: string): ShipOutcome {
  if (d.db.shipment(b.id)) d.db.noteShipment(b.id, reason);
  return { backup: b.id, policy: policy.name, result: 'waiting', reason };
}

/** The raw dump of a backup, chunk by chunk, checking the file against its recorded sha256 at the end. */
async function forEachChunk(b: BackupRow, fn: (plain: Buffer) => Promise<void> | void): Promise<void> {
  const file = createHash('sha256');
  const src = createReadStream(b.file);
  src.on('data', (c) => file.update(c as Buffer));
  const raw = src.pipe(decompressor(b.compression as Compression));
  src.on('error', (err) => raw.destroy(err));
  const chunker = new Chunker();
  for await (const part of raw) for (const c of chunker.push(part as Buffer)) await fn(c.data);
  for (const c of chunker.flush()) await fn(c.data);
  if (file.digest('hex') !== b.sha256)
    throw new ShipError(`backup ${b.id}: the file on board no longer matches its sha256; not shipped`);
}

async function shipOne(d: BackupDeps, o: ShipOptions, policy: PolicyDocument, b: BackupRow): Promise<ShipOutcome> {
  const vessel = d.vessel;
  const t0 = Date.now();
  const budget = policy.ashore.bytesPerDay;
  const day = utcDay(d.now());
  if (d.db.dayBytes(policy.name, day) >= budget)
    return waiting(d, b, policy, `today's budget of ${budget} bytes ashore is spent; resumes tomorrow (UTC)`);
  d.db.beginShipment(b.id, policy.name, d.now());
  const keys: ChunkSealKeys | undefined = policy.encryption
    ? chunkSealKeys(d.db.sealSecret(policy.encryption.keyId, newChunkSecret, d.now()))
    : undefined;
  let sent = 0;
  let uploaded = 0;
  let paced = 0;
  const account = (bytes: number, uploadedChunks: number, chunks: number) => {
    sent += bytes;
    d.db.shipProgress(b.id, policy.name, day, { chunks, uploaded: uploadedChunks, bytes });
  };
  const spend = async (bytes: number) => {
    if (d.db.dayBytes(policy.name, day) + bytes > budget)
      throw new Stop(`today's budget of ${budget} bytes ashore would be passed; resumes tomorrow (UTC)`);
    if (o.bytesPerSecond > 0) {
      paced += bytes;
      const wait = (paced / o.bytesPerSecond) * 1000 - (Date.now() - t0);
      if (wait > 0) await sleep(wait, o.signal ?? new AbortController().signal);
    }
    if (o.signal?.aborted) throw new Stop('stopped (the agent is shutting down)');
  };
  try {
    // Pass 1: the ids (and the raw digest) of the whole dump; only 32 bytes per chunk are held.
    const ids: string[] = [];
    const rawHash = createHash('sha256');
    let rawBytes = 0;
    await forEachChunk(b, (plain) => {
      ids.push(chunkId(storedChunk(plain, keys)));
      rawHash.update(plain);
      rawBytes += plain.byteLength;
    });
    const rawSha256 = rawHash.digest('hex');
    const missing = new Set<string>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += MISSING_BATCH) {
      const body = { digests: unique.slice(i, i + MISSING_BATCH) };
      const size = Buffer.byteLength(JSON.stringify(body));
      await spend(size);
      const res = await o.client.request('POST', paths.backupChunksMissing(vessel), {
        body,
        timeoutMs: CONTROL_TIMEOUT_MS,
      });
      answer(res, 'which chunks the hub lacks');
      account(size + res.body.byteLength, 0, ids.length);
      for (const m of backupChunksMissingSchema.parse(JSON.parse(res.body.toString())).missing) missing.add(m);
    }
    // Pass 2: only what the hub lacks, in packs.
    const packBytes = o.packBytes ?? DEFAULT_SHIP_PACK_BYTES;
    let pack: UploadEntry[] = [];
    let size = 0;
    const send = async () => {
      if (!pack.length) return;
      const body = encodeUploadPack(pack);
      await spend(body.byteLength);
      const res = await o.client.request('POST', paths.backupChunks(vessel), {
        raw: body,
        headers: { 'content-type': MEDIA.uploadPack },
        timeoutMs: CONTROL_TIMEOUT_MS + (o.bytesPerSecond > 0 ? (2000 * body.byteLength) / o.bytesPerSecond : 0),
      });
      answer(res, 'backup chunk upload');
      account(body.byteLength + res.body.byteLength, pack.length, ids.length);
      uploaded += pack.length;
      pack = [];
      size = 0;
      // The kill -9 test stops the agent here: some chunks ashore, the rest and the list not yet.
      faultPoint('backup-ship', 'after');
    };
    if (missing.size) {
      await forEachChunk(b, async (plain) => {
        const stored = storedChunk(plain, keys);
        const id = chunkId(stored);
        if (!missing.delete(id)) return;
        const compressed = compressStored(stored);
        pack.push({ digest: id, rawSize: stored.byteLength, compressed });
        size += compressed.byteLength + UPLOAD_ENTRY_HEADER_BYTES;
        if (size >= packBytes) await send();
      });
      await send();
    }
    // The list: what makes the chunks a backup ashore.
    const record: BackupRecordBody = {
      policy: b.policy,
      policySequence: b.policySequence,
      method: b.method,
      startedAt: b.startedAt,
      finishedAt: b.finishedAt ?? b.startedAt,
      bytes: b.bytes ?? 0,
      sha256: b.sha256!,
      rawBytes,
      rawSha256: keys ? null : rawSha256,
      seal: policy.encryption
        ? {
            keyId: policy.encryption.keyId,
            header: (
              await sealBytes(
                policy.encryption.to,
                Buffer.from(
                  JSON.stringify({
                    secret: d.db.sealSecret(policy.encryption.keyId, newChunkSecret, d.now()).toString('base64'),
                    rawSha256,
                    rawBytes,
                  } satisfies SealedHeader),
                ),
              )
            ).toString('base64'),
          }
        : null,
      chunks: encodeChunkList(ids),
    };
    const listBytes = Buffer.byteLength(JSON.stringify(record));
    await spend(listBytes);
    const res = await o.client.request('PUT', paths.backup(vessel, b.id), {
      body: record,
      timeoutMs: CONTROL_TIMEOUT_MS,
    });
    answer(res, 'backup record');
    account(listBytes + res.body.byteLength, 0, ids.length);
    d.db.finishShipment(b.id, 'done', null, d.now());
    const seconds = (Date.now() - t0) / 1000;
    const shipment = d.db.shipment(b.id)!;
    d.event('backup.shipped', {
      policy: policy.name,
      id: b.id,
      chunks: ids.length,
      uploadedChunks: uploaded,
      bytes: sent,
      bytesAllAttempts: shipment.bytes,
      listBytes,
      sealed: policy.encryption?.keyId ?? null,
      seconds,
    });
    d.log.info(
      { policy: policy.name, id: b.id, chunks: ids.length, uploadedChunks: uploaded, bytes: sent, seconds },
      'backup shipped ashore',
    );
    return {
      backup: b.id,
      policy: policy.name,
      result: 'shipped',
      chunks: ids.length,
      uploadedChunks: uploaded,
      bytes: sent,
    };
  } catch (err) {
    const reason = errorMessage(err);
    if (err instanceof Stop || err instanceof HubUnreachableError) {
      d.db.noteShipment(b.id, reason);
      d.log.info({ policy: policy.name, id: b.id, reason }, 'backup not shipped yet; resumes where it stopped');
      return { backup: b.id, policy: policy.name, result: 'waiting', bytes: sent, reason };
    }
    // Said once per reason: the loop tries again after a backoff, and a ship's outbox is not for repeats.
    if (d.db.shipment(b.id)?.reason !== reason) {
      d.event('backup.ship-failed', { policy: policy.name, id: b.id, reason });
      d.log.warn({ policy: policy.name, id: b.id, reason }, 'backup not shipped');
    }
    d.db.noteShipment(b.id, reason);
    return { backup: b.id, policy: policy.name, result: 'failed', bytes: sent, reason };
  }
}

function answer(res: { status: number; body: Buffer }, what: string): void {
  if (res.status >= 200 && res.status < 300) return;
  let message = res.body.toString().slice(0, 300);
  try {
    message = (JSON.parse(message) as { message?: string }).message ?? message;
  } catch {
    /* not JSON */
  }
  throw new HubRefusedError(`${what}: hub answered ${res.status}: ${message}`, res.status);
}

// After a failed or cut trip, wait this long first, doubling up to the cap: re-cutting a large dump costs CPU.
const SHIP_BACKOFF_BASE_MS = 30_000;
const SHIP_BACKOFF_MAX_MS = 30 * 60_000;

/** The agent loop for backups ashore: a pass every tick while there is a hub, backing off after failures. */
export async function shipLoop(
  d: BackupDeps,
  o: Omit<ShipOptions, 'client' | 'signal'> & {
    client: () => HubClient | undefined;
    signal: AbortSignal;
    tickMs: number;
  },
): Promise<void> {
  let failures = 0;
  while (!o.signal.aborted) {
    const client = o.client();
    let delay = o.tickMs;
    if (client) {
      try {
        const r = await shipTick(d, { ...o, client });
        const bad = r.some((x) => x.result === 'failed' || (x.result === 'waiting' && x.bytes !== undefined));
        failures = bad ? failures + 1 : 0;
      } catch (err) {
        failures++;
        d.log.warn({ reason: errorMessage(err) }, 'backups ashore: pass failed');
      }
      if (failures > 0)
        delay = Math.min(SHIP_BACKOFF_MAX_MS, SHIP_BACKOFF_BASE_MS * 2 ** (failures - 1), o.tickMs * 2 ** failures);
    }
    await sleep(delay, o.signal);
  }
}
