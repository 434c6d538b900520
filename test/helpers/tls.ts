import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { onTestFinished } from 'vitest';
import { tempDir } from './tmp.js';

/** A CA made by the test (ECDSA P-256, self-signed), and the files that hold it. */
export interface TestCa {
  name: string;
  certFile: string;
  keyFile: string;
  pem: string;
  /** Hex sha256 of its DER: what an enrolment token pins. */
  pin: string;
}

/** A certificate issued by a TestCa (or self-signed), with its key. */
export interface TestCert {
  certFile: string;
  keyFile: string;
  /** The leaf alone (certFile) and leaf + CA (chainFile). */
  chainFile: string;
  pem: string;
  pin: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const pinOf = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();

/** A fresh self-signed ECDSA CA in its own temp dir. */
export function makeCa(name = 'tender-test-ca'): TestCa {
  return makeCaIn(tempDir('tender-ca-'), name);
}

/** A fresh self-signed ECDSA CA in `dir` (the caller removes it). */
export function makeCaIn(dir: string, name: string): TestCa {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      `/CN=${name}`,
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  const pem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  return { name, certFile: join(dir, 'ca.pem'), keyFile: join(dir, 'ca.key'), pem, pin: pinOf(pem) };
}

// Where test/global-setup.ts put the run's CA: the CA every shore of the journey tests issues its hub
// certificate from, and the one NODE_EXTRA_CA_CERTS makes this process (and every `tender` it starts)
// trust through the system store. Vessels do not use it that way: they pin the CA their token names.
export const RUN_CA_ENV = 'TENDER_TEST_RUN_CA_DIR';

/** The run's CA (see RUN_CA_ENV). */
export function runCa(): TestCa {
  const dir = process.env[RUN_CA_ENV];
  if (!dir)
    throw new Error(`${RUN_CA_ENV} is not set: run the tests through vitest (test/global-setup.ts makes the CA)`);
  const pem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  return {
    name: 'tender-test-run-ca',
    certFile: join(dir, 'ca.pem'),
    keyFile: join(dir, 'ca.key'),
    pem,
    pin: pinOf(pem),
  };
}

/**
 * A server certificate for 127.0.0.1 and localhost (or `names`), issued by `ca` (or self-signed when ca is
 * undefined), valid for `days` (negative: already expired).
 */
export function issueCert(
  ca: TestCa | undefined,
  opts: { days?: number; names?: string[]; cn?: string } = {},
): TestCert {
  const dir = tempDir('tender-cert-');
  const names = opts.names ?? ['IP:127.0.0.1', 'DNS:localhost'];
  const days = String(opts.days ?? 30);
  const cn = opts.cn ?? 'tender-hub';
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'hub.key'], dir);
  if (!ca) {
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'hub.key',
        '-subj',
        `/CN=${cn}`,
        '-days',
        days,
        '-addext',
        `subjectAltName=${names.join(',')}`,
        '-addext',
        'extendedKeyUsage=serverAuth',
        '-out',
        'hub.pem',
      ],
      dir,
    );
  } else {
    openssl(['req', '-new', '-key', 'hub.key', '-subj', `/CN=${cn}`, '-out', 'hub.csr'], dir);
    writeFileSync(
      join(dir, 'ext'),
      `subjectAltName=${names.join(',')}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        'hub.csr',
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-set_serial',
        `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
        '-days',
        days,
        '-extfile',
        'ext',
        '-out',
        'hub.pem',
      ],
      dir,
    );
  }
  const pem = readFileSync(join(dir, 'hub.pem'), 'utf8');
  const chainFile = join(dir, 'chain.pem');
  writeFileSync(chainFile, pem + (ca ? ca.pem : ''));
  return { certFile: join(dir, 'hub.pem'), keyFile: join(dir, 'hub.key'), chainFile, pem, pin: pinOf(pem) };
}

/** A listening server for a test, closed when the test ends, with what it received. */
export interface TrapServer {
  url: string;
  /** Bytes received: decrypted application bytes for a TLS proxy, raw bytes for the others. */
  received(): Buffer;
  close(): Promise<void>;
}

async function listenTrap(server: Server, scheme: string, got: Buffer[]): Promise<TrapServer> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const trap: TrapServer = {
    url: `${scheme}://127.0.0.1:${port}`,
    received: () => Buffer.concat(got),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  onTestFinished(() => trap.close());
  return trap;
}

/**
 * A man in the middle: terminates TLS with `cert` (another CA's, an expired one) and, given `to`, forwards
 * what it decrypts to that port in plain (as a proxy on a ground station would).
 */
export function startTlsProxy(cert: { certFile: string; keyFile: string }, to?: number): Promise<TrapServer> {
  const got: Buffer[] = [];
  const server = createTlsServer(
    { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile), minVersion: 'TLSv1.3' },
    (client) => {
      client.on('data', (d: Buffer) => got.push(d));
      client.on('error', () => {});
      if (to === undefined) return;
      const up = netConnect(to, '127.0.0.1');
      up.on('error', () => client.destroy());
      client.pipe(up).pipe(client);
    },
  );
  server.on('tlsClientError', () => {});
  return listenTrap(server, 'https', got);
}

/** A plain TCP server that records every byte and answers like an HTTP server (a downgrade in the path). */
export function startPlainTrap(): Promise<TrapServer> {
  const got: Buffer[] = [];
  const server = createNetServer((s) => {
    s.on('data', (d: Buffer) => {
      got.push(d);
      s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
    });
    s.on('error', () => {});
  });
  return listenTrap(server, 'https', got);
}

/** Accepts TCP connections and never answers (a handshake that stalls on a black-holed link). */
export function startStallServer(): Promise<TrapServer> {
  const got: Buffer[] = [];
  const server = createNetServer((s) => {
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
  });
  return listenTrap(server, 'https', got);
}
