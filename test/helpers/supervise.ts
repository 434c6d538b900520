import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cleanup } from './cleanup.js';

const UNIT = fileURLToPath(new URL('../../systemd/tender-agent.service', import.meta.url));

export interface Supervised {
  /** Every line any run printed, in order. */
  lines: string[];
  /** Starts of ExecStart so far. */
  starts: number;
  /** What each ExecStartPre printed (the preflight's verdicts). */
  preflights: string[];
  proc?: ChildProcess;
  waitFor(pred: (line: string) => boolean, timeoutMs: number, from?: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * What systemd does with tender-agent.service, done by the test where systemd cannot be PID 1: read the
 * unit's ExecStartPre, ExecStart and Environment lines (the real file, with its paths mapped to the
 * test's), run the preflight, start the agent, and on any exit start both again after `restartMs`
 * (the unit's Restart=always; RestartSec is shortened). `envFor(n)` adds environment to the n-th start
 * (1-based), e.g. a fault point for one run only.
 */
export function superviseAgent(opts: {
  installed: string;
  config: string;
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  envFor?: (start: number) => NodeJS.ProcessEnv;
  restartMs?: number;
}): Supervised {
  const map = (s: string) =>
    s
      .replaceAll('/usr/local/bin/tender', opts.installed)
      .replaceAll('/etc/tender/agent.json', opts.config)
      .replaceAll('/var/lib/tender', opts.dataDir);
  const unit = readFileSync(UNIT, 'utf8').split('\n');
  const value = (key: string) =>
    unit.filter((l) => l.startsWith(`${key}=`)).map((l) => map(l.slice(key.length + 1)).split(' '));
  const pre = value('ExecStartPre')[0]!;
  const start = value('ExecStart')[0]!;
  const unitEnv = Object.fromEntries(
    value('Environment').map((kv) => {
      const s = kv.join(' ');
      return [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)];
    }),
  );
  let stopped = false;
  const waiters: { pred: (l: string) => boolean; from: number; resolve: (l: string) => void }[] = [];
  const s: Supervised = {
    lines: [],
    starts: 0,
    preflights: [],
    waitFor(pred, timeoutMs, from = 0) {
      const hit = s.lines.slice(from).find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timed out waiting; agent output so far:\n${s.lines.slice(-30).join('\n')}`)),
          timeoutMs,
        );
        waiters.push({ pred, from, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
    async stop() {
      stopped = true;
      const p = s.proc;
      if (p && p.exitCode === null && p.signalCode === null) {
        const gone = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 25_000))]);
        if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      }
    },
  };
  const push = (line: string) => {
    s.lines.push(line);
    const at = s.lines.length - 1;
    for (const w of [...waiters]) {
      if (at < w.from || !w.pred(line)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  };
  // Not spawnSync: the test's own load generator shares this event loop and must not stall.
  const preflight = (env: NodeJS.ProcessEnv) =>
    new Promise<string>((resolve) =>
      execFile(pre[0]!, pre.slice(1), { env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
        resolve(`${err ? `exit ${String(err.code ?? err.message)}` : 'ok'} ${stdout.trim()} ${stderr.trim()}`.trim()),
      ),
    );
  const run = async () => {
    if (stopped) return;
    const env = { ...process.env, ...unitEnv, ...opts.env };
    const verdict = await preflight(env);
    s.preflights.push(verdict);
    push(`[preflight] ${verdict}`);
    if (stopped) return;
    s.starts++;
    const child = spawn(start[0]!, start.slice(1), {
      env: { ...env, ...opts.envFor?.(s.starts) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    s.proc = child;
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', (err) => push(`[supervisor] start failed: ${err.message}`));
    child.on('exit', (code, signal) => {
      push(`[supervisor] agent exited: ${signal ?? code}`);
      if (!stopped) setTimeout(() => void run(), opts.restartMs ?? 1_000);
    });
  };
  void run();
  cleanup(() => s.stop());
  return s;
}
