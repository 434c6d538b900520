import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { daemon, eventually, tender, type Daemon } from './proc.js';
import { issueCert, runCa, type TestCa, type TestCert } from './tls.js';
import { tempDir } from './tmp.js';

/** A shore (keys, hub process, admin token) and helpers to enrol real vessel processes against it. */
export interface Shore {
  dir: string;
  env: NodeJS.ProcessEnv;
  hub: Daemon;
  url: string;
  releaseKey: string;
  /** The hub's certificate (issued by the run's CA); undefined for a plain http:// shore. */
  cert?: TestCert;
  ca?: TestCa;
  start(listen?: string): Promise<void>;
  /** The hub's address through something listening on 127.0.0.1:PORT (a link simulator): its scheme. */
  via(port: number | string): string;
}

// Ports for tests to hold later (router, console, metrics) are drawn below the kernel's ephemeral range
// (32768-60999), where Docker's published ports and every outgoing connection take theirs: a port picked
// here cannot be taken by a container another test starts before this one binds it.
const TEST_PORTS = { from: 20_000, to: 32_000 };
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port free on 127.0.0.1 now, outside the ephemeral range, not handed out before in this process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = TEST_PORTS.from + Math.floor(Math.random() * (TEST_PORTS.to - TEST_PORTS.from));
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
}

/**
 * A shore: keys, an admin token and a `tender hub serve` process. It serves HTTPS by default with a
 * certificate the run's CA issued (test/global-setup.ts), so the journeys run as a fleet would: enrolment
 * tokens pin that CA, agents talk TLS 1.3 to it, ops commands verify it (TENDER_CA). `{ tls: false }` is
 * for the few tests about plain http:// itself.
 */
export async function startShore(opts: { tls?: boolean } = {}): Promise<Shore> {
  const dir = tempDir('tender-shore-');
  expect((await tender(['keys', 'init', '--out', join(dir, 'keys')])).code).toBe(0);
  const tok = await tender(['hub', 'token', 'create', '--data', join(dir, 'hub'), '--role', 'admin']);
  expect(tok.code, tok.stderr).toBe(0);
  const releaseKey = join(
    dir,
    'keys',
    (await import('node:fs')).readdirSync(join(dir, 'keys')).find((f) => f.startsWith('release-'))!,
  );
  const ca = opts.tls === false ? undefined : runCa();
  const shore = {
    dir,
    env: { TENDER_TOKEN: tok.stdout.trim(), TENDER_LOG_LEVEL: 'debug', ...(ca && { TENDER_CA: ca.certFile }) },
    releaseKey,
    ca,
    cert: ca && issueCert(ca),
  } as unknown as Shore;
  shore.via = (port) => `${ca ? 'https' : 'http'}://127.0.0.1:${port}`;
  shore.start = async (listen = '127.0.0.1:0') => {
    const tls = shore.cert ? ['--tls-cert', shore.cert.chainFile, '--tls-key', shore.cert.keyFile] : [];
    shore.hub = daemon(
      [
        'hub',
        'serve',
        '--data',
        join(dir, 'hub'),
        '--root',
        join(dir, 'keys', 'root.json'),
        '--listen',
        listen,
        ...tls,
      ],
      shore.env,
    );
    const line = await shore.hub.waitFor((l) => l.includes('hub listening'));
    shore.url = JSON.parse(line).url;
    shore.env.TENDER_HUB = shore.url;
  };
  await shore.start();
  return shore;
}

export const CONSOLE_PASSWORD = 'crew-pass-1';

export interface Vessel {
  name: string;
  consoleUrl: string;
  metricsUrl: string;
  config: string;
  dataDir: string;
  agent?: Daemon;
  router?: Daemon;
  startAgent(env?: NodeJS.ProcessEnv): Daemon;
  startRouter(): Promise<Daemon>;
  status(): Promise<any>;
}

/** Enrol a vessel with test-speed settings (1 s polls, loopback router) and return its controls. */
export async function enrolVessel(
  shore: Shore,
  name: string,
  overrides: Record<string, unknown> = {},
  /** `enrolVia`: the hub address to enrol through (a link of its own), default the shore's. */
  opts: { enrolVia?: string } = {},
): Promise<Vessel> {
  const add = await tender(['vessel', 'add', name, '--json'], shore.env);
  expect(add.code, add.stderr).toBe(0);
  const dir = tempDir(`tender-vessel-${name}-`);
  const config = join(dir, 'agent.json');
  const dataDir = join(dir, 'state');
  const consolePort = await freePort();
  const e = await tender([
    'agent',
    'enroll',
    '--hub',
    opts.enrolVia ?? shore.url,
    '--token',
    JSON.parse(add.stdout).token,
    '--config',
    config,
    '--data',
    dataDir,
    '--console-password',
    CONSOLE_PASSWORD,
    '--console-listen',
    `127.0.0.1:${consolePort}`,
    // A plain http:// shore only with the flag; an https:// one's token pins its CA.
    ...(shore.url.startsWith('http://') ? ['--insecure-http'] : []),
  ]);
  expect(e.code, e.stderr).toBe(0);
  const c = JSON.parse(readFileSync(config, 'utf8'));
  const metricsPort = await freePort();
  writeFileSync(
    config,
    JSON.stringify({
      ...c,
      pollIntervalSeconds: 1,
      maxBackoffSeconds: 2,
      routerBind: '127.0.0.1',
      watchSeconds: 20,
      telemetry: { metricsListen: `127.0.0.1:${metricsPort}`, statsIntervalSeconds: 5 },
      ...overrides,
    }),
  );
  const v: Vessel = {
    name,
    consoleUrl: `http://127.0.0.1:${consolePort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    config,
    dataDir,
    startAgent(env = {}) {
      v.agent = daemon(['agent', 'run', '--config', config], env);
      return v.agent;
    },
    async startRouter() {
      v.router = daemon(['router', 'run', '--config', config]);
      await v.router.waitFor((l) => l.includes('router running'));
      return v.router;
    },
    async status() {
      const r = await tender(['status', '--config', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    },
  };
  return v;
}

export function composeFile(dir: string, name: string, image: string, port: number, app: string, extra = ''): string {
  const file = join(dir, `${name}.yml`);
  writeFileSync(
    file,
    `name: ${app}
services:
  portal:
    image: ${image}
    ports: ["${port}:8080"]
    x-tender:
      health: { http: /health, timeout: 8s, successes: 1 }
      drain: 1s
${extra}`,
  );
  return file;
}

export async function publishAndRollout(shore: Shore, compose: string, version: string, target = 'all'): Promise<void> {
  const p = await tender(
    ['release', 'publish', '--compose', compose, '--key', shore.releaseKey, '--version', version],
    shore.env,
  );
  expect(p.code, p.stderr).toBe(0);
  const r = await tender(['rollout', 'start', version, '--target', target], shore.env);
  expect(r.code, r.stderr).toBe(0);
}

/** GET through the router (on HOST: a second vessel's router binds another loopback address); the body or the error. */
export async function getBody(port: number, host = '127.0.0.1'): Promise<string> {
  try {
    const r = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(3000) });
    return (await r.text()).trim();
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

/** What a failing test should print about a vessel: `tender status` and the agent's last log lines. */
export async function vesselReport(vessel: Vessel): Promise<string> {
  const st = await tender(['status', '--config', vessel.config, '--json']).catch((e: Error) => ({ stdout: e.message }));
  return [`status: ${st.stdout.trim()}`, 'agent log:', ...(vessel.agent?.lines.slice(-40) ?? [])].join('\n');
}

/** Wait as `eventually` does; on a timeout the error also says WHAT was awaited and REPORT's text. */
export async function eventuallyOrReport<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  report: () => Promise<string>,
  timeoutMs?: number,
  stepMs?: number,
): Promise<T> {
  try {
    return await eventually(fn, timeoutMs, stepMs);
  } catch (err) {
    throw new Error(`${(err as Error).message} waiting for ${what}\n${await report()}`, { cause: err });
  }
}

/**
 * Wait until the router serves BODY. On a timeout the error carries what the router last answered and,
 * given the vessel, its status and the agent's last log lines, so a CI failure says why.
 */
export async function waitServing(port: number, body: string, vessel?: Vessel, timeoutMs = 40_000): Promise<void> {
  let last = '';
  await eventuallyOrReport(
    `"${body}"`,
    async () => (last = await getBody(port)) === body,
    async () => `router answered: ${last}${vessel ? `\n${await vesselReport(vessel)}` : ''}`,
    timeoutMs,
    250,
  );
}
