import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { positional, requiredOpt, table, type Command, type CommandContext } from '../shared/cli.js';
import { TenderError } from '../shared/errors.js';
import { HUB_OPTIONS, opsCall, opsFetch, resolveHubTarget } from '../shared/ops-client.js';
import { paths, ROUTES } from '../shared/protocol/routes.js';
import {
  SEALED_DOWNLOAD_MAGIC,
  sealedHeaderSchema,
  type backupSummarySchema,
} from '../shared/protocol/backup-ashore.js';
import { chunkSealKeys, openStoredChunk } from '../shared/content/backup-chunks.js';
import { openBytes } from '../shared/trust/sealed-box.js';
import type { z } from 'zod';

/**
 * Backups ashore from an ops machine: the policies in force on the hub, a vessel's backups ashore, a
 * download (the dump itself, checked against its sha256; or the sealed file, opened with the shore seal
 * key by `tender backup open`).
 */
export class BackupShoreError extends TenderError {}

type BackupSummary = z.infer<typeof backupSummarySchema>;

export async function shorePolicyList(ctx: CommandContext) {
  return opsCall(resolveHubTarget(ctx), ROUTES.listPolicies, paths.policies());
}

export function humanPolicies(r: {
  policies: { name: string; sequence: number; targets: string[]; publishedAt: string }[];
}) {
  if (r.policies.length === 0) return 'no backup policies on the hub';
  return table(
    ['POLICY', 'SEQUENCE', 'TARGETS', 'PUBLISHED'],
    r.policies.map((p) => [
      p.name,
      String(p.sequence),
      p.targets.join(','),
      p.publishedAt.slice(0, 16).replace('T', ' '),
    ]),
  );
}

export async function shoreBackupList(ctx: CommandContext, vessel: string, policy?: string) {
  const r = await opsCall(resolveHubTarget(ctx), ROUTES.listBackups, paths.backups(vessel, { limit: 1000 }));
  return { vessel: r.vessel, backups: policy ? r.backups.filter((b) => b.policy === policy) : r.backups };
}

export function humanShoreBackups(r: { vessel: string; backups: BackupSummary[] }): string {
  if (r.backups.length === 0) return `no backups of ${r.vessel} ashore`;
  return table(
    ['ID', 'POLICY', 'STARTED', 'DUMP', 'CHUNKS', 'SEALED'],
    r.backups.map((b) => [
      b.id,
      b.policy,
      b.startedAt.slice(0, 16).replace('T', ' '),
      `${(b.rawBytes / 1e6).toFixed(2)} MB`,
      String(b.chunks),
      b.sealed ?? '-',
    ]),
  );
}

/** Download a backup to `out` (written beside, fsynced, renamed: never a half file under that name). */
export async function downloadBackup(
  ctx: CommandContext,
  vessel: string,
  id: string,
  out: string,
): Promise<{ vessel: string; id: string; out: string; bytes: number; sealed: string | null; sha256: string | null }> {
  const target = resolveHubTarget(ctx);
  const listed = (await opsCall(target, ROUTES.listBackups, paths.backups(vessel, { limit: 1000 }))).backups.find(
    (b) => b.id === id,
  );
  if (!listed)
    throw new BackupShoreError(`no backup ${id} of ${vessel} ashore (see: tender backup list --vessel ${vessel})`);
  const res = await opsFetch(target)(`${target.hub}${paths.backupContent(vessel, id)}`, {
    headers: target.token ? { authorization: `Bearer ${target.token}` } : {},
  }).catch((err: Error) => {
    throw new BackupShoreError(`cannot reach the hub at ${target.hub}: ${err.message}`);
  });
  if (!res.ok || !res.body)
    throw new BackupShoreError(`hub answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const partial = `${out}.partial`;
  const fd = openSync(partial, 'w', 0o600);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const part of res.body as AsyncIterable<Uint8Array>) {
      hash.update(part);
      bytes += part.byteLength;
      writeSync(fd, part);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw new BackupShoreError(`download of ${id} cut after ${bytes} bytes: ${(err as Error).message}`);
  }
  closeSync(fd);
  const sha256 = hash.digest('hex');
  if (!listed.sealed && (bytes !== listed.rawBytes || sha256 !== listed.rawSha256)) {
    rmSync(partial, { force: true });
    throw new BackupShoreError(
      `download of ${id}: ${bytes} bytes with sha256 ${sha256.slice(0, 12)}, the vessel recorded ${listed.rawBytes} ` +
        `with ${listed.rawSha256?.slice(0, 12)}; refused`,
    );
  }
  renameSync(partial, out);
  return { vessel, id, out, bytes, sealed: listed.sealed, sha256: listed.sealed ? null : sha256 };
}

export const backupDownload: Command = {
  path: ['backup', 'download'],
  args: 'ID',
  summary: 'ashore: download a backup from the hub (the dump, checked; a sealed one opens with `tender backup open`)',
  options: {
    vessel: { type: 'string', description: 'the vessel whose backup it is' },
    out: { type: 'string', description: 'the file to write' },
    ...HUB_OPTIONS,
  },
  async run(ctx) {
    return downloadBackup(ctx, requiredOpt(ctx, 'vessel'), positional(ctx, 0, 'ID'), requiredOpt(ctx, 'out'));
  },
  human: (r: Awaited<ReturnType<typeof downloadBackup>>) =>
    r.sealed
      ? `downloaded sealed backup ${r.id} of ${r.vessel} (${r.bytes} bytes) to ${r.out}; open it with ` +
        `\`tender backup open ${r.out} --key seal.key --out FILE\``
      : `downloaded backup ${r.id} of ${r.vessel} to ${r.out}: ${r.bytes} bytes, sha256 ` +
        `${r.sha256} as recorded on board`,
};

/** Whether a file is a sealed download (rather than a sealed `backup export`). */
export async function isSealedDownload(file: string): Promise<boolean> {
  const head: Buffer[] = [];
  for await (const p of createReadStream(file, { start: 0, end: SEALED_DOWNLOAD_MAGIC.byteLength - 1 }))
    head.push(p as Buffer);
  return Buffer.concat(head).equals(SEALED_DOWNLOAD_MAGIC);
}

/**
 * Open a sealed download: the header (sealed to the shore key) gives the vessel's chunk secret and the
 * dump's sha256; every chunk is opened and checked, and the dump is checked whole before it is renamed
 * into place.
 */
export async function openSealedDownload(file: string, privatePem: string, out: string): Promise<{ bytes: number }> {
  let buf: Buffer = Buffer.alloc(0);
  let header: z.infer<typeof sealedHeaderSchema> | undefined;
  let keys: ReturnType<typeof chunkSealKeys> | undefined;
  const hash = createHash('sha256');
  let bytes = 0;
  const partial = `${out}.partial`;
  const fd = openSync(partial, 'wx', 0o600);
  try {
    for await (const part of createReadStream(file)) {
      buf = buf.byteLength ? Buffer.concat([buf, part as Buffer]) : (part as Buffer);
      if (!header) {
        const at = SEALED_DOWNLOAD_MAGIC.byteLength;
        if (buf.byteLength < at + 4) continue;
        const len = buf.readUInt32BE(at);
        if (buf.byteLength < at + 4 + len) continue;
        const opened = await openBytes(privatePem, buf.subarray(at + 4, at + 4 + len));
        header = sealedHeaderSchema.parse(JSON.parse(opened.toString()));
        keys = chunkSealKeys(Buffer.from(header.secret, 'base64'));
        buf = buf.subarray(at + 4 + len);
      }
      while (buf.byteLength >= 4 && buf.byteLength >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const plain = openStoredChunk(buf.subarray(4, 4 + len), keys);
        hash.update(plain);
        bytes += plain.byteLength;
        writeSync(fd, plain);
        buf = buf.subarray(4 + len);
      }
    }
    if (!header) throw new BackupShoreError(`${file}: truncated before its sealed header`);
    if (buf.byteLength) throw new BackupShoreError(`${file}: truncated inside a chunk`);
    if (bytes !== header.rawBytes || hash.digest('hex') !== header.rawSha256)
      throw new BackupShoreError(`${file}: the opened dump does not match the sha256 sealed with it (truncated?)`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(partial, out);
    return { bytes };
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* closed already */
    }
    rmSync(partial, { force: true });
    throw err;
  }
}
