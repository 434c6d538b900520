import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { TenderError } from '../../shared/errors.js';

/**
 * How a backup is compressed on board. gzip comes with Node (nothing to install). zstd is faster and
 * smaller at its default level (bench/RESULTS.md has the figures on a real dump) but Node 20 has no zstd,
 * so it runs the `zstd` tool, which the vessel must have (Debian: zstd). Dumps are taken uncompressed
 * (pg_dump -Z0) and compressed here, so the raw bytes stay chunkable for the trip ashore.
 */
export class CompressionError extends TenderError {}

export type Compression = 'zstd' | 'gzip' | 'none';

// zstd's default level: the speed a small server can afford beside its services, one thread.
const ZSTD_ARGS = ['-q', '-3', '-T1', '-c'];
// gzip's default level.
const GZIP_LEVEL = 6;

export function extensionOf(c: Compression): string {
  return c === 'zstd' ? '.zst' : c === 'gzip' ? '.gz' : '';
}

function zstd(args: string[]): Duplex {
  const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  // The output ends only once zstd has exited 0: a crash or a damaged frame must not pass for a short file.
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const d = Duplex.from({ writable: child.stdin, readable: out });
  child.on('error', (err: NodeJS.ErrnoException) =>
    d.destroy(
      new CompressionError(
        err.code === 'ENOENT'
          ? 'zstd is not installed on this vessel (apt-get install zstd), or sign the policy with compression: gzip'
          : `zstd: ${err.message}`,
      ),
    ),
  );
  child.on('close', (code, signal) => {
    if (code === 0) out.end();
    else if (!d.destroyed)
      d.destroy(new CompressionError(`zstd exited ${code ?? signal}: ${stderr.trim().split('\n').pop() ?? ''}`));
  });
  d.on('close', () => child.exitCode === null && child.kill('SIGKILL'));
  return d;
}

export function compressor(c: Compression): Duplex | Transform {
  if (c === 'gzip') return createGzip({ level: GZIP_LEVEL });
  if (c === 'zstd') return zstd(ZSTD_ARGS);
  return new PassThrough();
}

export function decompressor(c: Compression): Duplex | Transform {
  if (c === 'gzip') return createGunzip();
  if (c === 'zstd') return zstd(['-q', '-d', '-c']);
  return new PassThrough();
}
