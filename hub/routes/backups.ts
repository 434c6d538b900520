import { Readable } from 'node:stream';
import { brotliDecompressSync } from 'node:zlib';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ChunkError } from '../../shared/content/chunk-store.js';
import { CHUNK_MAX } from '../../shared/content/chunking.js';
import { isBackupChunk, openStoredChunk } from '../../shared/content/backup-chunks.js';
import {
  BACKUP_RECORD_MAX_BYTES,
  decodeChunkList,
  SEALED_DOWNLOAD_MAGIC,
  u32,
  type BackupWireError,
} from '../../shared/protocol/backup-ashore.js';
import { verifyPolicyEnvelope } from '../../shared/protocol/backup-policy.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { ROUTES } from '../../shared/protocol/routes.js';
import { TenderError } from '../../shared/errors.js';
import type { HubDeps } from '../deps.js';
import { latestRoot } from '../roots.js';
import type { BackupAshore, HubStore, Vessel } from '../store/hub-store.js';
import { RequestValidationError, uploadPackEntries } from './validate.js';
import { addRoute } from './register.js';

// One upload request: a vessel sends about a megabyte at a time; this refuses junk, not honest packs.
const BACKUP_UPLOAD_LIMIT = 64 * 1024 * 1024;
// The "which do you lack" question: 50,000 ids per request from our agent, 1,000,000 at most.
const MISSING_QUERY_LIMIT = 80 * 1024 * 1024;
// A stored chunk is a chunk (64 KB at most) behind its prefix, or sealed: brotli, iv and tag on top.
const STORED_CHUNK_MAX = CHUNK_MAX + 1024;
// The hub's own retention, per vessel and policy: a month of dailies, and nothing older than a quarter.
export const DEFAULT_BACKUP_RETENTION = { count: 30, maxAgeMs: 90 * 86_400_000 };

export type BackupRouteDeps = Pick<HubDeps, 'store' | 'now'> & { retention?: { count: number; maxAgeMs: number } };

export class BackupRouteError extends TenderError {}

/**
 * Backup policies and backups ashore. Ops publish signed policies (the hub verifies and stores the
 * envelope; it cannot sign one); vessels ask which of a backup's chunk ids the hub lacks, upload those,
 * then record the backup's chunk list; ops list and download them. After each new backup the hub applies
 * its own retention to that vessel and policy.
 */
export function backupRoutes(deps: BackupRouteDeps): FastifyPluginAsync {
  const retention = deps.retention ?? DEFAULT_BACKUP_RETENTION;

  /** The vessel a request is about: itself (the signed request), or by name for ops. */
  async function vesselOf(req: FastifyRequest, name: string): Promise<Vessel> {
    const p = req.principal;
    const v =
      p?.kind === 'vessel' ? await deps.store.vessels.get(p.vessel.id) : await deps.store.vessels.getByName(name);
    if (!v || v.name !== name) throw new BackupRouteError(`no vessel named ${name}`, 'not_found', 1, 404);
    return v;
  }

  return async (app) => {
    addRoute(
      app,
      ROUTES.publishPolicy,
      async (req, reply) => {
        if (!req.rawBody) throw new RequestValidationError('body: a signed policy is required');
        const root = await latestRoot(deps.store);
        if (!root) throw new BackupRouteError('the hub has no root yet', 'not_ready', 1, 503);
        let policy;
        try {
          policy = verifyPolicyEnvelope(root.root, req.rawBody);
        } catch (err) {
          throw new RequestValidationError(`policy refused: ${(err as Error).message}`);
        }
        const by = req.principal?.kind === 'ops' ? `ops:${req.principal.name}` : 'unknown';
        const r = await deps.store.policies.publish(
          {
            name: policy.name,
            sequence: policy.sequence,
            targets: policy.targets,
            envelope: req.rawBody,
            publishedBy: by,
          },
          deps.now(),
          { actor: by, action: 'policy.publish', detail: { name: policy.name, sequence: policy.sequence } },
        );
        return reply
          .code(r.created ? 201 : 200)
          .send({ name: policy.name, sequence: policy.sequence, targets: policy.targets, created: r.created });
      },
      { bodyLimit: 128 * 1024 },
    );

    addRoute(app, ROUTES.listPolicies, async () => ({
      policies: (await deps.store.policies.list()).map((p) => ({
        name: p.name,
        sequence: p.sequence,
        targets: p.targets,
        publishedAt: new Date(p.publishedAt).toISOString(),
        publishedBy: p.publishedBy,
      })),
    }));

    addRoute(
      app,
      ROUTES.backupChunksMissing,
      async (req) => {
        await vesselOf(req, req.params.name);
        return { missing: await deps.store.chunks.missing([...new Set(req.body.digests)]) };
      },
      { bodyLimit: MISSING_QUERY_LIMIT },
    );

    addRoute(
      app,
      ROUTES.uploadBackupChunks,
      async (req) => {
        await vesselOf(req, req.params.name);
        const entries = uploadPackEntries(req.rawBody);
        let stored = 0;
        let present = 0;
        for (const e of entries) {
          if (e.rawSize > STORED_CHUNK_MAX)
            throw new RequestValidationError(
              `chunk ${e.digest.slice(0, 12)}: ${e.rawSize} bytes is over a backup chunk's size`,
            );
          let inflated: Buffer;
          try {
            inflated = brotliDecompressSync(e.compressed, { maxOutputLength: STORED_CHUNK_MAX });
          } catch {
            throw new RequestValidationError(
              `chunk ${e.digest.slice(0, 12)} does not inflate; ${stored} stored before it`,
            );
          }
          // Only backup chunks come this way: their prefix keeps them apart from releases' for retention.
          if (!isBackupChunk(inflated))
            throw new RequestValidationError(`chunk ${e.digest.slice(0, 12)} is not a backup chunk`);
          try {
            if (await deps.store.chunks.put(e.digest, e.compressed, e.rawSize)) stored++;
            else present++;
          } catch (err) {
            if (err instanceof ChunkError)
              throw new RequestValidationError(`${err.message}; ${stored} chunks before it were stored`);
            throw err;
          }
        }
        return { stored, present };
      },
      { bodyLimit: BACKUP_UPLOAD_LIMIT },
    );

    addRoute(
      app,
      ROUTES.putBackup,
      async (req, reply) => {
        const v = await vesselOf(req, req.params.name);
        const body = req.body;
        let chunks: string[];
        try {
          chunks = decodeChunkList(body.chunks);
        } catch (err) {
          throw new RequestValidationError(`chunks: ${(err as BackupWireError).message}`);
        }
        if (!req.params.id.startsWith(`${body.policy}-`))
          throw new RequestValidationError(`id: ${req.params.id} is not a backup of policy ${body.policy}`);
        const now = deps.now();
        const r = await deps.store.backups.put(
          {
            vesselId: v.id,
            id: req.params.id,
            policy: body.policy,
            policySequence: body.policySequence,
            method: body.method,
            startedAt: body.startedAt,
            finishedAt: body.finishedAt,
            bytes: body.bytes,
            sha256: body.sha256,
            rawBytes: body.rawBytes,
            rawSha256: body.rawSha256,
            seal: body.seal,
            chunks,
          },
          now,
        );
        if (r.created) {
          const pruned = await deps.store.backups.prune(v.id, body.policy, retention, now);
          if (pruned.removed.length)
            req.log.info({ vessel: v.name, policy: body.policy, ...pruned }, 'backups ashore removed by retention');
        }
        return reply.code(r.created ? 201 : 200).send({ created: r.created, id: req.params.id });
      },
      { bodyLimit: BACKUP_RECORD_MAX_BYTES },
    );

    addRoute(app, ROUTES.listBackups, async (req) => {
      const v = await vesselOf(req, req.params.name);
      const list = await deps.store.backups.list(v.id, { limit: req.query.limit });
      return {
        vessel: v.name,
        backups: list.map((b) => ({
          id: b.id,
          policy: b.policy,
          policySequence: b.policySequence,
          method: b.method,
          startedAt: new Date(b.startedAt).toISOString(),
          finishedAt: new Date(b.finishedAt).toISOString(),
          receivedAt: new Date(b.receivedAt).toISOString(),
          bytes: b.bytes,
          rawBytes: b.rawBytes,
          sha256: b.sha256,
          rawSha256: b.rawSha256,
          sealed: b.seal?.keyId ?? null,
          chunks: b.chunkCount,
        })),
      };
    });

    addRoute(app, ROUTES.getBackupContent, async (req, reply) => {
      const v = await vesselOf(req, req.params.name);
      const b = await deps.store.backups.get(v.id, req.params.id);
      if (!b)
        return reply.code(404).send({ error: 'not_found', message: `no backup ${req.params.id} of ${v.name} ashore` });
      const missing = await deps.store.chunks.missing([...new Set(b.chunks)]);
      if (missing.length)
        return reply.code(404).send({
          error: 'not_found',
          message: `backup ${b.id}: ${missing.length} of its chunks are gone from the hub's chunk store`,
        });
      reply
        .header('content-disposition', `attachment; filename="${b.id}.${b.seal ? 'sealed' : 'dump'}"`)
        .type(MEDIA.backup);
      return reply.send(Readable.from(backupBytes(deps.store, b)));
    });
  };
}

/** The dump joined from its chunks, or the sealed file: magic, header, then each chunk's stored form. */
async function* backupBytes(store: HubStore, b: BackupAshore): AsyncGenerator<Buffer> {
  if (b.seal) {
    const header = Buffer.from(b.seal.header, 'base64');
    yield Buffer.concat([SEALED_DOWNLOAD_MAGIC, u32(header.byteLength), header]);
  }
  for (const id of b.chunks) {
    const stored = brotliDecompressSync(await store.chunks.read(id), { maxOutputLength: STORED_CHUNK_MAX });
    yield b.seal ? Buffer.concat([u32(stored.byteLength), stored]) : openStoredChunk(stored);
  }
}
