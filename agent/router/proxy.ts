import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { TenderError } from '../../shared/errors.js';

export class RouterError extends TenderError {}

export interface Route {
  /** The public port the router holds on the vessel LAN. */
  port: number;
  target: { host: string; port: number };
  app: string;
  service: string;
  release: string;
  colour: string;
}

// A backend that does not accept within this time is down; the client is closed rather than left hanging.
const CONNECT_TIMEOUT_MS = 5_000;

interface Listener {
  server: Server;
  route: Route;
  open: Set<Socket>;
}

/**
 * A TCP proxy that holds each public port and forwards every new connection to the port's current
 * target. Changing a target affects only new connections: open ones stay on the old colour and drain.
 */
export class RouterProxy {
  private readonly listeners = new Map<number, Listener>();

  constructor(private readonly bind: string) {}

  routes(): Route[] {
    return [...this.listeners.values()].map((l) => l.route).sort((a, b) => a.port - b.port);
  }

  connections(): Record<number, number> {
    return Object.fromEntries([...this.listeners.entries()].map(([p, l]) => [p, l.open.size]));
  }

  /**
   * Make the routing table exactly `routes`. New ports are bound first; if any cannot be bound nothing
   * changes. Then targets switch (new connections only) and ports no longer listed stop listening.
   */
  async apply(routes: Route[]): Promise<void> {
    const seen = new Set<number>();
    for (const r of routes) {
      if (seen.has(r.port)) throw new RouterError(`port ${r.port} is listed twice`);
      seen.add(r.port);
    }
    const added: Listener[] = [];
    try {
      for (const r of routes) if (!this.listeners.has(r.port)) added.push(await this.listen(r));
    } catch (err) {
      for (const l of added) l.server.close();
      throw err;
    }
    for (const l of added) this.listeners.set(l.route.port, l);
    for (const r of routes) this.listeners.get(r.port)!.route = r;
    for (const [port, l] of this.listeners) {
      if (!seen.has(port)) {
        l.server.close();
        this.listeners.delete(port);
      }
    }
  }

  private listen(route: Route): Promise<Listener> {
    const listener: Listener = { server: createServer(), route, open: new Set() };
    listener.server.on('connection', (client) => this.forward(listener, client));
    return new Promise((resolve, reject) => {
      listener.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new RouterError(
            `cannot hold port ${route.port} on ${this.bind} for ${route.service}: ` +
              `${err.code === 'EADDRINUSE' ? 'already in use on this host' : err.message}`,
          ),
        ),
      );
      listener.server.listen({ host: this.bind, port: route.port }, () => resolve(listener));
    });
  }

  private forward(listener: Listener, client: Socket): void {
    const { target } = listener.route;
    listener.open.add(client);
    client.setNoDelay(true);
    const upstream = createConnection({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    upstream.setTimeout(CONNECT_TIMEOUT_MS, () => upstream.destroy());
    upstream.once('connect', () => upstream.setTimeout(0));
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      listener.open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.once('close', done);
    upstream.once('close', done);
    client.on('error', done);
    upstream.on('error', done);
  }

  async close(): Promise<void> {
    for (const l of this.listeners.values()) {
      l.server.close();
      for (const s of l.open) s.destroy();
    }
    this.listeners.clear();
  }
}
