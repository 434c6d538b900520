import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { positional, requiredOpt, stringOpt, type Command } from '../shared/cli.js';
import { UsageError } from '../shared/errors.js';
import { fsyncDir } from '../shared/fs-atomic.js';
import { HUB_OPTIONS, HubRequestError, opsFetch, resolveHubTarget } from '../shared/ops-client.js';
import { BundleDecoder } from '../shared/protocol/bundle.js';
import { MEDIA } from '../shared/protocol/http.js';
import { releaseRefSchema } from '../shared/protocol/names.js';
import { paths } from '../shared/protocol/routes.js';

// A hub that sends nothing for this long while a bundle streams has stalled (shore LAN or office link).
const BUNDLE_STALL_MS = 120_000;

/**
 * `tender bundle export APP@VERSION --out FILE [--for vessel:NAME]`: the hub streams the bundle, which is
 * written to FILE.part and renamed when whole, so a cut export never leaves a file that looks complete.
 * The bytes are read as the vessel will read them (framing, end hash) before the rename.
 */
export const bundleExport: Command = {
  path: ['bundle', 'export'],
  summary: 'write a signed release bundle for a USB stick (the manifest and the chunks a vessel lacks, or all)',
  args: 'APP@VERSION',
  options: {
    ...HUB_OPTIONS,
    out: { type: 'string', description: 'the bundle file to write' },
    for: { type: 'string', description: 'vessel:NAME — leave out the chunks the hub knows that vessel holds' },
  },
  async run(ctx) {
    const ref = positional(ctx, 0, 'APP@VERSION');
    if (!releaseRefSchema.safeParse(ref).success) throw new UsageError(`${ref}: must be APP@VERSION or VERSION`);
    const out = requiredOpt(ctx, 'out');
    const forText = stringOpt(ctx, 'for');
    if (forText !== undefined && !/^vessel:.+/.test(forText)) throw new UsageError('--for takes vessel:NAME');
    const target = resolveHubTarget(ctx);
    const stall = new AbortController();
    let timer = setTimeout(() => stall.abort(), BUNDLE_STALL_MS);
    let res: Response;
    try {
      res = await opsFetch(target)(`${target.hub}${paths.bundle(ref, { for: forText?.slice(7) })}`, {
        headers: { accept: MEDIA.bundle, ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
        signal: stall.signal,
      });
    } catch (err) {
      throw new HubRequestError(`cannot reach the hub at ${target.hub}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) {
      const text = await res.text();
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        /* not JSON */
      }
      clearTimeout(timer);
      throw new HubRequestError(`hub answered ${res.status}: ${message}`);
    }
    const part = `${out}.part`;
    const fd = openSync(part, 'w', 0o644);
    const check = new BundleDecoder();
    let bytes = 0;
    let chunks = 0;
    let header: { app: string; version: string } | undefined;
    try {
      for await (const piece of res.body as AsyncIterable<Uint8Array>) {
        clearTimeout(timer);
        timer = setTimeout(() => stall.abort(), BUNDLE_STALL_MS);
        const buf = Buffer.from(piece);
        for (const f of check.push(buf)) {
          if (f.type === 'chunk') chunks++;
          else if (f.type === 'header') header = f.header;
        }
        writeSync(fd, buf);
        bytes += buf.byteLength;
      }
      check.finish();
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(part, { force: true });
      throw new HubRequestError(`bundle export cut or malformed: ${(err as Error).message}; nothing written`);
    } finally {
      clearTimeout(timer);
    }
    closeSync(fd);
    renameSync(part, out);
    fsyncDir(dirname(out));
    return { file: out, release: `${header!.app}@${header!.version}`, for: forText ?? null, chunks, bytes };
  },
  human: (r: { file: string; release: string; for: string | null; chunks: number; bytes: number }) =>
    `wrote ${r.file}: ${r.release}, ${r.chunks} chunks, ` +
    `${(r.bytes / 1e6).toFixed(1)} ` +
    `MB${r.for ? ` (what ${r.for} lacks)` : ' (every chunk)'}`,
};
