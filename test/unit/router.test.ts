import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { RouterProxy, type Route } from '../../agent/router/proxy.js';
import { freePort } from '../helpers/fleet.js';

function backend(reply: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((s) => s.end(reply));
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

async function read(port: number): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    let data = '';
    const s = connect(port, '127.0.0.1');
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

const route = (port: number, target: number, release = '1'): Route => ({
  port,
  target: { host: '127.0.0.1', port: target },
  app: 'a',
  service: 'web',
  release,
  colour: 'blue',
});

describe('router proxy', () => {
  it('forwards to the current target and switches new connections at the flip', async () => {
    const a = await backend('A');
    const b = await backend('B');
    const port = await freePort();
    const proxy = new RouterProxy('127.0.0.1');
    try {
      await proxy.apply([route(port, a.port)]);
      expect(await read(port)).toBe('A');
      await proxy.apply([route(port, b.port, '2')]);
      expect(await read(port)).toBe('B');
      expect(proxy.routes()[0]!.release).toBe('2');
    } finally {
      await proxy.close();
      a.server.close();
      b.server.close();
    }
  });

  it('refuses a port already taken on the host and changes nothing', async () => {
    const a = await backend('A');
    const taken = await backend('squatter');
    const port = await freePort();
    const proxy = new RouterProxy('127.0.0.1');
    try {
      await proxy.apply([route(port, a.port)]);
      await expect(
        proxy.apply([route(port, a.port), { ...route(taken.port, a.port), service: 'api' }]),
      ).rejects.toThrow(`cannot hold port ${taken.port} on 127.0.0.1 for api: already in use on this host`);
      expect(proxy.routes().map((r) => r.port)).toEqual([port]);
      expect(await read(port)).toBe('A');
    } finally {
      await proxy.close();
      a.server.close();
      taken.server.close();
    }
  });
});
