import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCaIn, RUN_CA_ENV } from '../test/helpers/tls.js';

/**
 * The run's CA for a bench, which runs outside vitest and so without test/global-setup.ts: startShore()
 * issues its hub certificate from that CA, and this process's fetch and every `tender` it starts must
 * trust it. Node reads NODE_EXTRA_CA_CERTS only when it starts, so the first call makes the CA in a temp
 * dir and runs this script again as a child with both variables set; it returns only in that child. The
 * parent passes SIGINT and SIGTERM on (the child cleans up after itself), removes the CA when the child
 * ends, and exits with its code.
 */
export async function withRunCa(): Promise<void> {
  if (process.env[RUN_CA_ENV]) return;
  const dir = mkdtempSync(join(tmpdir(), 'tender-bench-ca-'));
  const ca = makeCaIn(dir, 'tender-bench-run-ca');
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [RUN_CA_ENV]: dir, NODE_EXTRA_CA_CERTS: ca.certFile },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) =>
    child.on('exit', (status, signal) => resolve(status ?? 128 + (signal ? constants.signals[signal] : 0))),
  );
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
