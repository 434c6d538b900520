import { readFileSync } from 'node:fs';
import { TenderError } from '../shared/errors.js';
import { parseCompose } from '../shared/protocol/release-spec.js';
import type { DockerEngine } from '../shared/docker.js';
import type { ReleaseManifest } from '../shared/protocol/manifest.js';
import { releaseVersionSchema } from '../shared/protocol/names.js';
import { describeZodError } from '../shared/validation.js';
import type { ChunkStore } from '../shared/content/chunk-store.js';
import { chunkImage } from './image-chunker.js';

export class PublishError extends TenderError {}

/** A default version when ops give none: the UTC time of the build, sortable and unique enough. */
export function defaultVersion(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace('T', '.').slice(0, 15);
}

/**
 * Turn a compose file plus the images in the local engine into a release manifest. Every image must exist
 * locally; its ID (the digest of its config) is what the vessel will check after loading it.
 */
export async function buildManifest(
  composeFile: string,
  opts: {
    version: string;
    sequence: number;
    docker: DockerEngine;
    now?: Date;
    chunkCache?: ChunkStore;
    progress?: (imageRef: string, bytesRead: number) => void;
  },
): Promise<ReleaseManifest> {
  const v = releaseVersionSchema.safeParse(opts.version);
  if (!v.success) throw new PublishError(`--version ${describeZodError(v.error, JSON.stringify(opts.version))}`);
  let text: string;
  try {
    text = readFileSync(composeFile, 'utf8');
  } catch (err) {
    throw new PublishError(
      `cannot read ${composeFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const compose = parseCompose(text, composeFile);
  const services: ReleaseManifest['services'] = {};
  const images: ReleaseManifest['images'] = {};
  for (const [name, s] of Object.entries(compose.services)) {
    const img = await opts.docker.imageInspect(s.imageRef);
    if (!img)
      throw new PublishError(
        `${composeFile}: services.${name}.image: ${s.imageRef} is not in the local ` +
          `Docker engine (build or pull it first)`,
      );
    services[name] = { ...s, imageId: img.id };
    let entry = images[img.id];
    if (!entry) {
      const refs: string[] = [];
      entry = opts.chunkCache
        ? {
            refs,
            ...(await chunkImage(opts.docker, img.id, img.diffIds, opts.chunkCache, (n) =>
              opts.progress?.(s.imageRef, n),
            )),
          }
        : { refs, layers: img.diffIds.map((diffId) => ({ diffId, size: 0 })) };
      images[img.id] = entry;
    }
    if (!entry.refs.includes(s.imageRef)) entry.refs.push(s.imageRef);
  }
  return {
    _type: 'release',
    spec: 1,
    app: compose.app,
    version: opts.version,
    sequence: opts.sequence,
    createdAt: (opts.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    services,
    images,
  };
}
