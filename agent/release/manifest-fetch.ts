import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TenderError } from '../../shared/errors.js';
import { MAX_MANIFEST_BYTES } from '../../shared/protocol/manifest.js';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { describeFetchError, HubUnreachableError, type HubClient } from '../hub-client.js';

export class ManifestFetchError extends TenderError {}

/**
 * Download a release manifest, resuming at the byte where a cut stopped it (the partial file and its ETag
 * live on disk, so a restart resumes too). Refused while streaming once it passes the size cap.
 */
export async function fetchManifestResumable(
  client: HubClient,
  vessel: string,
  release: { app: string; version: string },
  dir: string,
): Promise<Buffer> {
  const name = `${release.app}@${release.version}`;
  mkdirSync(dir, { recursive: true });
  const part = join(dir, `${name}.manifest.part`);
  const meta = join(dir, `${name}.manifest.etag`);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const offset = existsSync(part) ? statSync(part).size : 0;
    const etag = existsSync(meta) ? readFileSync(meta, 'utf8') : '';
    const ac = new AbortController();
    const from = offset > 0 && etag ? { offset, etag } : undefined;
    const res = await client.openManifest(vessel, release.app, release.version, from, ac.signal);
    if (res.status === 416 && offset > 0) break;
    if (res.status !== 200 && res.status !== 206) {
      const text = await res.text().catch(() => '');
      throw new ManifestFetchError(
        `manifest: hub answered ${res.status}: ${text.slice(0, 200)}`,
        'hub_refused',
        1,
        res.status,
      );
    }
    if (res.status === 200) rmSync(part, { force: true });
    const total =
      res.status === 206
        ? Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN)
        : Number(res.headers.get('content-length') ?? NaN);
    if (total > MAX_MANIFEST_BYTES) {
      ac.abort();
      throw new ManifestFetchError(
        `manifest of ${name} is ${total} bytes, over the ${MAX_MANIFEST_BYTES}-byte cap; refused`,
      );
    }
    writeFileAtomic(meta, res.headers.get('etag') ?? '', 0o600);
    let have = res.status === 206 ? offset : 0;
    try {
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        have += piece.byteLength;
        if (have > MAX_MANIFEST_BYTES) {
          ac.abort();
          throw new ManifestFetchError(
            `manifest of ${name} passed the ${MAX_MANIFEST_BYTES}-byte cap while streaming; refused`,
          );
        }
        appendFileSync(part, piece);
      }
    } catch (err) {
      if (err instanceof ManifestFetchError) throw err;
      // Cut: keep what arrived and resume from there.
      if (attempt > 20) throw new HubUnreachableError(`manifest of ${name}: ${describeFetchError(err)}`);
      continue;
    }
    if (Number.isFinite(total) && statSync(part).size < total) continue;
    break;
  }
  const bytes = readFileSync(part);
  rmSync(part, { force: true });
  rmSync(meta, { force: true });
  return bytes;
}
