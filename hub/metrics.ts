import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { VesselStore } from './vessel-store.js';

/**
 * The hub's Prometheus registry: process metrics plus fleet gauges. Gauges read the database at scrape
 * time, so they cannot drift from the truth, and their labels are bounded (no per-vessel labels here).
 */
export type HubMetrics = ReturnType<typeof createHubMetrics>;

export function createHubMetrics(vessels: VesselStore) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'tender_vessels_total',
    help: 'Vessels registered on this hub (enrolled or pending, not counting revoked)',
    registers: [registry],
    collect() {
      this.set(vessels.counts().total);
    },
  });
  new Gauge({
    name: 'tender_vessels_active',
    help: 'Vessels heard from in the last 15 minutes',
    registers: [registry],
    collect() {
      this.set(vessels.counts().active);
    },
  });
  return { registry };
}
