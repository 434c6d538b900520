import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { StateStore } from './state-store.js';
import { createBoardReleases } from './release/board-releases.js';
import { CLASS_NAMES } from './telemetry/outbox.js';
import type { ShipStats } from './telemetry/shipper.js';

/**
 * The agent's Prometheus endpoint for an onboard Prometheus: process metrics, the outbox, the link, the
 * live release. Gauges read local state at scrape time; no label carries unbounded values.
 */
export function createAgentMetrics(store: StateStore, ship: ShipStats) {
  const registry = new Registry();
  const releases = createBoardReleases(store.db);
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'tender_agent_outbox_records',
    help: 'Telemetry records queued on board, per class',
    labelNames: ['class'],
    registers: [registry],
    collect() {
      const s = store.outbox.stats();
      for (const c of CLASS_NAMES) this.set({ class: c }, s.byClass[c]!.records);
    },
  });
  new Gauge({
    name: 'tender_agent_outbox_bytes',
    help: 'Bytes held by the telemetry outbox (the cap applies to this)',
    registers: [registry],
    collect() {
      this.set(store.outbox.stats().bytes);
    },
  });
  new Gauge({
    name: 'tender_agent_outbox_dropped_records',
    help: 'Telemetry records dropped by the outbox cap since the outbox was created, per class',
    labelNames: ['class'],
    registers: [registry],
    collect() {
      const s = store.outbox.stats();
      for (const c of CLASS_NAMES) this.set({ class: c }, s.drops[c]!.records);
    },
  });
  new Gauge({
    name: 'tender_agent_link_up',
    help: '1 when the last exchange with the hub succeeded',
    registers: [registry],
    collect() {
      this.set(store.get('link.state') === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tender_agent_release_info',
    help: 'The live release (value 1), and whether the crew holds it',
    labelNames: ['release', 'held'],
    registers: [registry],
    collect() {
      this.reset();
      const r = releases.serving()?.version;
      if (r) this.set({ release: r, held: String(store.get('crew.hold') !== undefined) }, 1);
    },
  });
  new Counter({
    name: 'tender_agent_telemetry_shipped_records_total',
    help: 'Telemetry records acknowledged by the hub since the agent started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ship.records);
    },
  });
  new Counter({
    name: 'tender_agent_telemetry_wire_bytes_total',
    help: 'Compressed telemetry bytes sent to the hub since the agent started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ship.wireBytes);
    },
  });
  return registry;
}

export function serveAgentMetrics(registry: Registry, listen: string, log: Logger): Promise<Server> {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      log.info({ listen }, 'agent metrics listening');
      resolve(server);
    });
  });
}
