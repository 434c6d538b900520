import { createFileChunkStore } from './file-chunk-store.js';
import type { HubChunkStore } from './hub-store.js';
import { createS3ChunkStore, s3ClientFromEnv } from './s3-chunk-store.js';
import { HubStoreConfigError } from './store-config-error.js';

/**
 * The chunk store a location names: a folder (DATA/chunks of the embedded hub, or one every hub process
 * mounts), or s3://BUCKET/PREFIX on an S3-compatible object store.
 */
export async function openChunkStore(location: string, env: NodeJS.ProcessEnv = process.env): Promise<HubChunkStore> {
  if (location.startsWith('s3://')) return createS3ChunkStore(s3ClientFromEnv(env), location);
  if (/^[a-z0-9]+:\/\//i.test(location))
    throw new HubStoreConfigError(`chunks: ${location} is not a folder or s3://BUCKET/PREFIX`);
  return createFileChunkStore(location);
}
