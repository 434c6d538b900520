import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCaIn, RUN_CA_ENV } from './helpers/tls.js';

/**
 * Once per `vitest run`, before any worker starts: the run's CA (test/helpers/tls.ts runCa), which the
 * journey tests' hubs serve certificates of. Workers and every process they start inherit the variables,
 * so the test code's own fetch and the ops commands trust it like a CA of the system store.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'tender-run-ca-'));
  const ca = makeCaIn(dir, 'tender-test-run-ca');
  process.env[RUN_CA_ENV] = dir;
  process.env.NODE_EXTRA_CA_CERTS = ca.certFile;
  return () => rmSync(dir, { recursive: true, force: true });
}
