import type { FastifyInstance } from 'fastify';
import { onTestFinished } from 'vitest';
import { buildHub, type HubDeps, type HubOptions } from '../../hub/app.js';
import type { Role } from '../../hub/store/ops-token-store.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { makeKeys, rootPayloadFor, signedRoot, type TestKeys } from './keys.js';
import { tempDir } from './tmp.js';
import { paths } from '../../shared/protocol/routes.js';

export interface TestHub {
  app: FastifyInstance;
  deps: HubDeps;
  dataDir: string;
  routes: string[];
  keys: TestKeys;
  rootBytes: Buffer;
  token(role: Role): string;
  /** Listen on 127.0.0.1:0 and return the base URL. */
  listen(): Promise<string>;
}

/** An in-process hub on a temp dir with a root loaded, closed when the test ends. */
export async function startHub(opts: Partial<HubOptions> = {}): Promise<TestHub> {
  const dataDir = tempDir('tender-hub-');
  const { app, deps, routes } = await buildHub({ dataDir, ...opts });
  onTestFinished(async () => {
    await app.close();
  });
  const keys = makeKeys(3, 1);
  const rootBytes = signedRoot(rootPayloadFor(1, keys), keys.root);
  deps.roots.add(rootBytes);
  const tokens = new Map<Role, string>();
  return {
    app,
    deps,
    dataDir,
    routes,
    keys,
    rootBytes,
    token(role) {
      if (!tokens.has(role)) tokens.set(role, deps.opsTokens.create(role, `test-${role}`).token);
      return tokens.get(role)!;
    },
    async listen() {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const a = app.server.address();
      return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    },
  };
}

export interface TestVessel {
  name: string;
  id: string;
  key: PrivateKey;
  /** Signed request headers for this vessel. */
  sign(
    method: string,
    path: string,
    body?: unknown,
    ts?: number,
  ): { headers: Record<string, string>; payload?: string };
}

/** Add and enrol a vessel through the API. */
export async function enrolVessel(hub: TestHub, name: string, groups: string[] = []): Promise<TestVessel> {
  const add = await hub.app.inject({
    method: 'POST',
    url: paths.vessels(),
    headers: { authorization: `Bearer ${hub.token('operator')}` },
    payload: { name, groups },
  });
  if (add.statusCode !== 201) throw new Error(`vessel add: ${add.statusCode} ${add.body}`);
  const key = generateKey().key;
  const enrol = await hub.app.inject({
    method: 'POST',
    url: paths.enrol(),
    payload: { token: add.json().token, publicKey: key.publicRaw.toString('base64') },
  });
  if (enrol.statusCode !== 200) throw new Error(`enrol: ${enrol.statusCode} ${enrol.body}`);
  const id = enrol.json().vesselId as string;
  return {
    name,
    id,
    key,
    sign(method, path, body, ts = Date.now()) {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers = signVesselRequest(
        key,
        id,
        method,
        path,
        ts,
        payload === undefined ? undefined : Buffer.from(payload),
      );
      if (payload !== undefined) headers['content-type'] = 'application/json';
      return { headers, payload };
    },
  };
}
