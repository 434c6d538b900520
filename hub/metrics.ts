import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HubStore } from './store/hub-store.js';
import { ACTIVE_WINDOW_MS, OFFLINE_AFTER_MS, STALE_AFTER_MS } from './fleet.js';
import { FLEET_STATES } from './store/page-records.js';
import { ROLLOUT_STATES } from './store/rollout-records.js';
import { ROLLOUT_OUTCOMES } from '../shared/protocol/rollout-outcome.js';

// Rollouts whose vessels are counted per outcome: at most this many open and finished ones.
const METRIC_OPEN_ROLLOUTS = 50;
const METRIC_FINISHED_ROLLOUTS = 10;

/**
 * The hub's Prometheus registry: process metrics plus fleet gauges. Gauges read the store at scrape
 * time, so they cannot drift from the truth, and their labels are bounded: per-vessel series only when
 * opted in (hub serve --per-vessel-metrics), HTTP by route pattern. monitoring/ has alerts and a dashboard.
 */
export type HubMetrics = ReturnType<typeof createHubMetrics>;

export interface HubMetricsOptions {
  /** Also one series per vessel for backlog and drops (off by default: bounded label sets at fleet scale). */
  perVessel?: boolean;
}

export function createHubMetrics(store: HubStore, now: () => number = Date.now, opts: HubMetricsOptions = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'tender_vessels_registered',
    // A gauge, so not _total (promtool check metrics; the monitoring test runs it).
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
  // The fleet per state, as the status page counts it (a vessel counts in each state it is in): the
  // series alerts are written on. Nine series, whatever the fleet's size.
  new Gauge({
    name: 'tender_fleet_vessels',
    help: 'Vessels per state as the status page counts them: online, stale, offline, never, revoked, failing, ...',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const t = now();
      const c = await store.page.counts({ staleBefore: t - STALE_AFTER_MS, offlineBefore: t - OFFLINE_AFTER_MS });
      for (const st of FLEET_STATES) this.set({ state: st }, c[st]);
    },
  });
  new Gauge({
    name: 'tender_fleet_backlog_records',
    help: 'Telemetry records queued on board across the fleet, as last reported by each vessel',
    registers: [registry],
    async collect() {
      this.set((await store.telemetry.fleetCounters()).reduce((n, t) => n + t.backlog, 0));
    },
  });
  new Gauge({
    name: 'tender_fleet_dropped_records',
    help: 'Telemetry records dropped on board by the outbox byte cap across the fleet, per class (cumulative)',
    labelNames: ['class'],
    registers: [registry],
    async collect() {
      const sums = new Map<string, number>();
      for (const t of await store.telemetry.fleetCounters())
        for (const [cls, d] of Object.entries(t.drops)) sums.set(cls, (sums.get(cls) ?? 0) + d.records);
      this.reset();
      for (const [cls, n] of sums) this.set({ class: cls }, n);
    },
  });
  // Per-vessel gauges: one series per vessel, only when opted in (10,000 vessels are 10,000 series each).
  if (opts.perVessel) {
    new Gauge({
      name: 'tender_vessel_backlog_records',
      help: 'Telemetry records queued on board, as last reported by each vessel (hub --per-vessel-metrics)',
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
  }
  // Requests by route pattern (never the path: no vessel names), method and status class.
  const requests = new Counter({
    name: 'tender_hub_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status class (2xx, 4xx, 5xx)',
    labelNames: ['route', 'method', 'code'],
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'tender_hub_http_request_duration_seconds',
    help: 'Time to answer, by route pattern',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
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
  new Gauge({
    name: 'tender_rollouts',
    help: 'Rollouts on this hub by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const s of ROLLOUT_STATES) this.set({ state: s }, 0);
      for (const c of await store.rollouts.stateCounts()) this.set({ state: c.state }, c.n);
    },
  });
  // Labels stay bounded: the open rollouts and the few newest finished ones, six outcomes each and
  // 'superseded' (vessels a later rollout of the app took over, no longer counted in the others).
  new Gauge({
    name: 'tender_rollout_vessels',
    help: `Vessels per outcome in the open rollouts and the ${METRIC_FINISHED_ROLLOUTS} newest finished ones`,
    labelNames: ['rollout', 'outcome'],
    registers: [registry],
    async collect() {
      this.reset();
      const open = (await store.rollouts.open()).map((r) => r.id);
      const recent = (await store.rollouts.list({ limit: METRIC_FINISHED_ROLLOUTS + open.length }))
        .filter((r) => !open.includes(r.id))
        .slice(0, METRIC_FINISHED_ROLLOUTS)
        .map((r) => r.id);
      const ids = [...open.slice(0, METRIC_OPEN_ROLLOUTS), ...recent];
      for (const id of ids)
        for (const o of [...ROLLOUT_OUTCOMES, 'superseded']) this.set({ rollout: String(id), outcome: o }, 0);
      for (const c of await store.rollouts.outcomeCounts(ids))
        this.set({ rollout: String(c.rolloutId), outcome: c.outcome }, c.n);
    },
  });
  const rolloutEvents = new Counter({
    name: 'tender_rollout_events_total',
    help: 'Rollout events by kind: wave-start, halt, complete',
    labelNames: ['event'],
    registers: [registry],
  });
  for (const e of ['wave-start', 'halt', 'complete']) rolloutEvents.inc({ event: e }, 0);
  return {
    registry,
    rolloutEvent(kind: 'wave-start' | 'halt' | 'complete') {
      rolloutEvents.inc({ event: kind });
    },
    /** One answered request; ROUTE is the pattern it matched ('unmatched' for none). */
    request(route: string, method: string, status: number, seconds: number) {
      requests.inc({ route, method, code: `${Math.floor(status / 100)}xx` });
      durations.observe({ route }, seconds);
    },
    telemetryReceived(wireBytes: number, stored: number) {
      bytes.inc(wireBytes);
      records.inc(stored);
    },
  };
}
