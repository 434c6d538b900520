import { Writable } from 'node:stream';
import { buildCli } from '../../bin/main.js';

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

/** Run a `tender` command in this process and capture what it prints. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await buildCli().run(args, { stdout, stderr, env: { ...env } });
  return { code, stdout: stdout.text, stderr: stderr.text };
}
