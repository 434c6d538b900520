/**
 * The demo's satellite link (scripts/demo.sh): the test suite's link simulator (test/link-sim.ts) as a
 * process between the vessel and the hub, at satellite speed, writing its byte counts to a file every
 * second so the demo can say what an update cost on the link.
 * Usage: npx tsx scripts/demo-link.ts LISTEN_PORT HUB_HOST:PORT STATS_FILE [KBIT_PER_S=512] [RTT_MS=600]
 */
import { writeFileSync } from 'node:fs';
import { LinkSim } from '../test/link-sim.js';

const [listen, target, statsFile, kbit = '512', rtt = '600'] = process.argv.slice(2);
if (!listen || !target || !statsFile) {
  process.stderr.write('usage: demo-link.ts LISTEN_PORT HUB_HOST:PORT STATS_FILE [KBIT_PER_S] [RTT_MS]\n');
  process.exit(2);
}
const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
const link = new LinkSim({ host, port }, { bytesPerSecond: (Number(kbit) * 1000) / 8, latencyMs: Number(rtt) / 2 });
await link.start(Number(listen));
const write = () => writeFileSync(statsFile, `${JSON.stringify({ ...link.stats, at: new Date().toISOString() })}\n`);
write();
setInterval(write, 1000);
process.stdout.write(`link up: 127.0.0.1:${listen} -> ${target} at ${kbit} kbit/s, ${rtt} ms round trip\n`);
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    write();
    void link.close().then(() => process.exit(0));
  });
