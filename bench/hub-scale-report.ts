/** The figures of one bench/hub-scale.ts run, and its tables for bench/RESULTS.md. */
import { median } from './lib.js';

export type Route = 'poll' | 'status' | 'telemetry';

export interface RouteRow {
  route: Route;
  requests: number;
  failed: number;
  perSecond: number;
  /** As the generator sees them (ms). */
  p50: number;
  p99: number;
  /** The same routes one at a time on the otherwise idle hub(s), in the same run. */
  idleP50: number;
  idleP99: number;
  /** Inside the hubs: their request-duration histograms, summed over the processes. */
  hubP50: number;
  hubP99: number;
}

export interface ScaleResult {
  machine: string;
  at: string;
  mode: 'sqlite' | 'pg';
  vessels: number;
  windowSeconds: number;
  /** Failed first polls by HTTP status or error code. */
  firstPollsFailed: Record<string, number>;
  loadAverage1m: { atStart: number; atEnd: number };
  routes: RouteRow[];
  /** Both hubs together in the PostgreSQL mode. */
  hubCpuShareOfOneCore: number;
  perHubCpuShareOfOneCore: number[];
  /** haproxy, PostgreSQL (with its backends). */
  othersCpuShareOfOneCore: Record<string, number>;
  generatorCpuShareOfOneCore: number;
  hubRssMb: number[];
  fleetPageMs: { underLoadMedian: number; idleMedian: number; underLoadError: string | undefined };
}

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** A quantile from bucket counts as Prometheus's histogram_quantile reads it (linear inside a bucket), in ms. */
export function bucketQuantile(after: Map<number, number>, before: Map<number, number> | undefined, q: number): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => after.get(le)! - (before?.get(le) ?? 0));
  const total = counts.at(-1)!;
  const rank = q * total;
  for (let i = 0; i < les.length; i++) {
    if (counts[i]! < rank) continue;
    const lo = i === 0 ? 0 : les[i - 1]!;
    const hi = les[i]!;
    if (hi === Infinity) return lo * 1000;
    const below = i === 0 ? 0 : counts[i - 1]!;
    return (lo + ((hi - lo) * (rank - below)) / Math.max(1, counts[i]! - below)) * 1000;
  }
  return NaN;
}

/** The route table of one run, or of the medians of several (each figure the median over the runs). */
export function printTable(results: ScaleResult[]): void {
  const m = (f: (r: ScaleResult) => number) => median(results.map(f));
  const head = ['route', 'req/s', 'requests', 'failed', 'p50 ms', 'p99 ms', 'hub p50', 'hub p99'];
  console.log(`| ${[...head, 'idle p50', 'idle p99', 'p99 ratio to idle'].join(' | ')} |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  results[0]!.routes.forEach((row, i) => {
    const at = (f: (r: RouteRow) => number) => m((r) => f(r.routes[i]!));
    console.log(
      `| ${row.route} | ${at((r) => r.perSecond).toFixed(1)} | ${at((r) => r.requests)} | ${at((r) => r.failed)} | ` +
        `${at((r) => r.p50).toFixed(1)} | ${at((r) => r.p99).toFixed(1)} | ` +
        `${at((r) => r.hubP50).toFixed(1)} | ${at((r) => r.hubP99).toFixed(1)} | ` +
        `${at((r) => r.idleP50).toFixed(1)} | ${at((r) => r.idleP99).toFixed(1)} | ` +
        `${at((r) => r.p99 / r.idleP99).toFixed(2)} |`,
    );
  });
  for (const r of results) if (r.fleetPageMs.underLoadError) console.log(`fleet page: ${r.fleetPageMs.underLoadError}`);
  const others = Object.keys(results[0]!.othersCpuShareOfOneCore);
  console.log(
    `hub CPU ${(100 * m((r) => r.hubCpuShareOfOneCore)).toFixed(0)} % of one core ` +
      `(${results[0]!.hubRssMb.length} process(es), RSS ${results[0]!.hubRssMb
        .map((_, i) => m((r) => r.hubRssMb[i]!).toFixed(0))
        .join(' + ')} MB); ` +
      others.map((o) => `${o} ${(100 * m((r) => r.othersCpuShareOfOneCore[o]!)).toFixed(0)} %, `).join('') +
      `generator ${(100 * m((r) => r.generatorCpuShareOfOneCore)).toFixed(0)} %; fleet page ` +
      `${m((r) => r.fleetPageMs.underLoadMedian).toFixed(0)} ms under load, ` +
      `${m((r) => r.fleetPageMs.idleMedian).toFixed(0)} ms idle; first polls failed ` +
      `${results.map((r) => JSON.stringify(r.firstPollsFailed)).join(', ')}; 1-min load average ` +
      results.map((r) => `${r.loadAverage1m.atStart.toFixed(2)}-${r.loadAverage1m.atEnd.toFixed(2)}`).join(', '),
  );
}
