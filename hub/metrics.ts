import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { Counter } from 'prom-client';
import type { HubStore } from './store/hub-store.js';
import { ACTIVE_WINDOW_MS } from './fleet.js';

/**
 * The hub's Prometheus registry: process metrics plus fleet gauges. Gauges read the store at scrape
 * time, so they cannot drift from the truth, and their labels are bounded (no per-vessel labels here).
 */
export type HubMetrics = ReturnType<typeof createHubMetrics>;

export function createHubMetrics(store: HubStore, now: () => number = Date.now) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'tender_vessels_total',
    help: 'Vessels registered on this hub (enrolled or pending, not counting revoked)',
    registers: [registry],
    async collect() {
      this.set((await store.vessels.counts(now() - ACTIVE_WINDOW_MS)).total);
    },
  });
  new Gauge({
    name: 'tender_vessels_active',
    help: 'Vessels heard from in the last 15 minutes',
    registers: [registry],
    async collect() {
      this.set((await store.vessels.counts(now() - ACTIVE_WINDOW_MS)).active);
    },
  });
  // Per-vessel gauges: one series per vessel (fleet size bounds them), no per-service or per-line labels.
  new Gauge({
    name: 'tender_vessel_backlog_records',
    help: 'Telemetry records queued on board, as last reported by each vessel',
    labelNames: ['vessel'],
    registers: [registry],
    async collect() {
      const fleet = await store.telemetry.fleetCounters();
      this.reset();
      for (const t of fleet) this.set({ vessel: t.vessel }, t.backlog);
    },
  });
  new Gauge({
    name: 'tender_vessel_dropped_records',
    help: 'Telemetry records dropped on board by the outbox byte cap, per vessel and class (cumulative)',
    labelNames: ['vessel', 'class'],
    registers: [registry],
    async collect() {
      const fleet = await store.telemetry.fleetCounters();
      this.reset();
      for (const t of fleet)
        for (const [cls, d] of Object.entries(t.drops)) this.set({ vessel: t.vessel, class: cls }, d.records);
    },
  });
  const bytes = new Counter({
    name: 'tender_telemetry_received_bytes_total',
    help: 'Compressed telemetry bytes received from vessels',
    registers: [registry],
  });
  const records = new Counter({
    name: 'tender_telemetry_stored_records_total',
    help: 'Telemetry records stored (duplicates not counted)',
    registers: [registry],
  });
  return {
    registry,
    telemetryReceived(wireBytes: number, stored: number) {
      bytes.inc(wireBytes);
      records.inc(stored);
    },
  };
}
