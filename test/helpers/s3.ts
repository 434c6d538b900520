import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tempDir } from './tmp.js';

/**
 * An S3-compatible server for tests: `s3rver` from npm, an EMULATOR of the S3 API (objects as files), not
 * a real object store. Debian's real engine here would be Ceph's radosgw on a one-node cluster, which does
 * not come up within a test's time on these 2-core machines; s3rver speaks the same wire protocol to the
 * same @aws-sdk/client-s3 the hub uses (SigV4, HEAD, GET with Range, PUT, DELETE). On 127.0.0.1, a free
 * port, one bucket, files in a temp folder; stop() closes it (and the clients' kept-alive sockets).
 */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** The environment a hub process (or openChunkStore) needs to reach it. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

interface S3rverLike {
  run(): Promise<{ port: number }>;
  httpServer?: Server;
  close(): Promise<void>;
}

export async function startS3(bucket = 'tender-chunks'): Promise<TestS3> {
  const S3rver = createRequire(import.meta.url)('s3rver') as new (o: object) => S3rverLike;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: tempDir('tender-s3-'),
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      // s3rver's fixed test credentials.
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    },
    async stop() {
      server.httpServer?.closeAllConnections();
      await server.close();
    },
  };
}
