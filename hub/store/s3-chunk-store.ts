import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { ChunkError, verifyCompressedChunk } from '../../shared/content/chunk-store.js';
import { HubStoreError, type HubChunkStore } from './hub-store.js';
import { HubStoreConfigError } from './store-config-error.js';

const DIGEST_RE = /^[0-9a-f]{64}$/;
// HEAD requests in flight at once for missing()/sizes(): a release's thousands of chunks in a few seconds,
// without opening thousands of sockets.
const PARALLEL = 32;

const missingChunk = (digest: string) =>
  new HubStoreError(`chunk ${digest.slice(0, 12)} is not in the hub's chunk store`, 'chunk_missing', 409);
const isNotFound = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
};

/** s3://BUCKET/PREFIX: the bucket and the key prefix (without a trailing slash; may be empty). */
export function parseS3Location(location: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(location);
  if (!m) throw new HubStoreConfigError(`chunks: ${location} is not s3://BUCKET/PREFIX (a valid bucket name)`);
  return { bucket: m[1]!, prefix: (m[2] ?? '').replace(/\/+$/, '') };
}

/**
 * The S3 client from the environment: the SDK's own chain for credentials (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/credentials, a role), AWS_REGION (default us-east-1), and
 * for MinIO, Ceph's radosgw or another S3-compatible server AWS_ENDPOINT_URL (or TENDER_S3_ENDPOINT),
 * which also selects path-style addressing unless TENDER_S3_PATH_STYLE=0.
 */
export function s3ClientFromEnv(env: NodeJS.ProcessEnv): S3Client {
  const endpoint = env.TENDER_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const cfg: S3ClientConfig = {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    ...(endpoint ? { endpoint, forcePathStyle: env.TENDER_S3_PATH_STYLE !== '0' } : {}),
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } }
      : {}),
  };
  return new S3Client(cfg);
}

/** `length` bytes of a stream after skipping `skip`; the rest is not read. */
async function* cut(body: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let pos = 0;
  let left = length;
  for await (const part of body) {
    const b = part as Buffer;
    const from = Math.max(0, skip - pos);
    pos += b.byteLength;
    if (from >= b.byteLength) continue;
    const piece = b.subarray(from, from + left);
    left -= piece.byteLength;
    yield piece;
    if (left === 0) break;
  }
  body.destroy();
}

async function inParallel<T, R>(items: readonly T[], fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * The hub's chunks on an S3-compatible object store, one object per chunk at PREFIX/<first two hex>/<digest>
 * (the folder layout), so every hub process reads the same bytes: a pack cut off through one hub resumes
 * through another at its byte. Objects are immutable once written (a digest names its bytes), so a second
 * put of a present chunk changes nothing; ranges are read with HTTP Range, checked against the size first
 * so a bad range is refused before any byte flows. Chunks are small (content-defined, ~16 KB; a layer
 * index at most a few MB), so each goes up in one PUT; multipart is not needed for them.
 */
export function createS3ChunkStore(client: S3Client, location: string): HubChunkStore {
  const { bucket, prefix } = parseS3Location(location);
  const keyOf = (digest: string) => {
    if (!DIGEST_RE.test(digest)) throw new ChunkError(`not a chunk digest: ${JSON.stringify(digest).slice(0, 80)}`);
    return `${prefix ? `${prefix}/` : ''}${digest.slice(0, 2)}/${digest}`;
  };
  const sizeOf = async (digest: string): Promise<number | undefined> => {
    try {
      const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: keyOf(digest) }));
      return h.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  const checkRange = async (digest: string, range?: { start: number; end: number }) => {
    const size = await sizeOf(digest);
    if (size === undefined) throw missingChunk(digest);
    const { start, end } = range ?? { start: 0, end: size };
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size)
      throw new HubStoreError(
        `chunk ${digest.slice(0, 12)}: range ${start}-${end} is outside its ${size} bytes`,
        'bad_range',
        416,
      );
    return { start, end, size };
  };
  const get = async (digest: string, start: number, end: number): Promise<Readable> => {
    let r;
    try {
      r = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: keyOf(digest), Range: `bytes=${start}-${end - 1}` }),
      );
    } catch (err) {
      if (isNotFound(err)) throw missingChunk(digest);
      throw err;
    }
    const body = r.Body as Readable;
    // A server may answer with more than the range asked (a whole object without Content-Range, or s3rver's
    // bytes=0-0 read as "from 0"): what it sent starts at Content-Range's first byte, and is cut to the range.
    const from = Number(/^bytes (\d+)-/.exec(r.ContentRange ?? '')?.[1] ?? 0);
    const sent = r.ContentLength ?? end - start;
    if (from === start && sent === end - start) return body;
    if (from > start || from + sent < end)
      throw new ChunkError(
        `chunk ${digest.slice(0, 12)}: the object store answered ${start}-${end} with ${r.ContentRange}`,
      );
    return Readable.from(cut(body, start - from, end - start));
  };
  const bytes = async (digest: string, start: number, end: number): Promise<Buffer> => {
    if (start === end) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for await (const p of await get(digest, start, end)) parts.push(p as Buffer);
    const buf = Buffer.concat(parts);
    if (buf.byteLength !== end - start)
      throw new ChunkError(
        `chunk ${digest.slice(0, 12)}: the object store sent ${buf.byteLength} of ${end - start} bytes`,
      );
    return buf;
  };
  return {
    async has(digest) {
      return (await sizeOf(digest)) !== undefined;
    },
    async missing(digests) {
      for (const d of digests) keyOf(d);
      const sizes = await inParallel(digests, sizeOf);
      return digests.filter((_, i) => sizes[i] === undefined);
    },
    size: sizeOf,
    async sizes(digests) {
      const out = new Map<string, number>();
      const sizes = await inParallel(digests, sizeOf);
      digests.forEach((d, i) => {
        if (sizes[i] !== undefined) out.set(d, sizes[i]);
      });
      return out;
    },
    async put(digest, compressed, rawSize) {
      verifyCompressedChunk(digest, compressed, rawSize);
      if ((await sizeOf(digest)) !== undefined) return false;
      // One PUT: the object appears whole or not at all.
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: keyOf(digest),
          Body: compressed,
          ContentLength: compressed.byteLength,
        }),
      );
      return true;
    },
    async read(digest) {
      const { start, end } = await checkRange(digest);
      return bytes(digest, start, end);
    },
    async readRange(digest, start, end) {
      await checkRange(digest, { start, end });
      return bytes(digest, start, end);
    },
    async stream(digest, range) {
      const r = await checkRange(digest, range);
      if (r.start === r.end) return Readable.from([]);
      return get(digest, r.start, r.end);
    },
    async remove(digest) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(digest) }));
    },
  };
}
