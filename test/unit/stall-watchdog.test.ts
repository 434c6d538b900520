import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { streamResponse } from '../../agent/release/transfer/watchdog.js';
import { HubUnreachableError } from '../../agent/hub-client.js';
import { DiskGuardError } from '../../agent/release/transfer/disk-guard.js';

// A server in its own process, so it keeps sending while this process is held up.
const SERVER = `
const http = require('node:http');
const total = Number(process.argv[1]);
const gapMs = Number(process.argv[2]);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': String(total) });
  let sent = 0;
  const t = setInterval(() => {
    const n = Math.min(4096, total - sent);
    res.write(Buffer.alloc(n, 7));
    sent += n;
    if (sent >= total) { clearInterval(t); res.end(); }
  }, gapMs);
}).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });
`;

let child: ChildProcess | undefined;
afterEach(() => child?.kill('SIGKILL'));

async function serve(total: number, gapMs: number): Promise<string> {
  child = spawn(process.execPath, ['-e', SERVER, String(total), String(gapMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    child!.stdout!.once('data', (b: Buffer) => resolve(b.toString().trim()));
    child!.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return `http://127.0.0.1:${port}/`;
}

function holdUp(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}

describe('stall watchdog', () => {
  it('does not call a stall on bytes that waited in the socket while the process was held up', async () => {
    const url = await serve(256 * 1024, 10);
    let got = 0;
    let held = false;
    await streamResponse(
      { stall: { ms: 300 } },
      (signal) => fetch(url, { signal }),
      (piece) => {
        got += piece.byteLength;
        // Once, part way: the event loop stops for over three stall windows while the server goes on.
        if (!held && got > 32 * 1024) {
          held = true;
          holdUp(1200);
        }
        return true;
      },
    );
    expect(held).toBe(true);
    expect(got).toBe(256 * 1024);
  });

  it('still drops a response that truly goes silent', async () => {
    // Headers, then nothing for a minute.
    const url = await serve(64 * 1024, 60_000);
    const t0 = Date.now();
    const err = await streamResponse(
      { stall: { ms: 300 } },
      (signal) => fetch(url, { signal }),
      () => true,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubUnreachableError);
    expect(String(err)).toMatch(/stalled \(nothing received for/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('lets what the receiver throws (a disk too full) through as itself, not as a cut link', async () => {
    const url = await serve(256 * 1024, 1);
    let pieces = 0;
    const err = await streamResponse(
      { stall: { ms: 5_000 } },
      (signal) => fetch(url, { signal }),
      () => {
        if (++pieces === 3) throw new DiskGuardError('not enough disk for release v2');
        return true;
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskGuardError);
    expect(err).not.toBeInstanceOf(HubUnreachableError);
  });
});
