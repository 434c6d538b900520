import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { onTestFinished } from 'vitest';
import { buildHub, type HubDeps, type HubOptions } from '../../hub/app.js';
import { createOpsToken, ROLES, type Role } from '../../hub/ops-tokens.js';
import { addRoot } from '../../hub/roots.js';
import { publishRelease } from '../../hub/releases.js';
import type { HubStore, StoredRelease } from '../../hub/store/hub-store.js';
import { createChunkStore, type ChunkStore } from '../../shared/content/chunk-store.js';
import { generateKey, type PrivateKey } from '../../shared/trust/keys.js';
import { signVesselRequest } from '../../shared/protocol/vessel-auth.js';
import { makeKeys, rootPayloadFor, signedRoot, type TestKeys } from './keys.js';
import { tempDir } from './tmp.js';
import { testHubStore } from './hub-store-mode.js';
import { paths } from '../../shared/protocol/routes.js';
import type { HubTlsState } from '../../hub/tls.js';

export interface TestHub {
  app: FastifyInstance;
  deps: HubDeps;
  dataDir: string;
  routes: string[];
  keys: TestKeys;
  rootBytes: Buffer;
  /**
   * The embedded hub's chunk folder through the synchronous file chunk store (the publisher's, the same
   * layout): what tests use to put a release's chunks in place without uploading them.
   */
  chunkFiles: ChunkStore;
  token(role: Role): string;
  /** Publish a signed manifest straight into the store (checked under the hub's root, as the route does). */
  publish(manifest: Buffer, by?: string, now?: number): Promise<StoredRelease>;
  /** Start a rollout of a release to a target straight in the store. */
  rollout(release: StoredRelease, target: string, now?: number): Promise<{ id: number; vessels: string[] }>;
  /** Listen on 127.0.0.1:0 and return the base URL (https:// when started with `tls`). */
  listen(): Promise<string>;
  /** Serve another certificate from the next handshake on (what SIGHUP does in `tender hub serve`). */
  reloadTls: (state: HubTlsState) => void;
  /**
   * What a hub restarted on this hub's data passes to buildHub besides dataDir: nothing on the embedded
   * store, another store on the same database in the PostgreSQL run (test/helpers/hub-store-mode.ts).
   */
  sameData(): Promise<{ store?: HubStore }>;
}

/** An in-process hub on a temp dir with a root loaded, closed when the test ends. */
export async function startHub(opts: Partial<HubOptions> = {}): Promise<TestHub> {
  const dataDir = tempDir('tender-hub-');
  const mode = opts.store ? undefined : await testHubStore(dataDir);
  const { app, deps, routes, reloadTls } = await buildHub({ dataDir, ...opts, ...(mode && { store: mode.store }) });
  onTestFinished(async () => {
    await app.close();
  });
  const keys = makeKeys(3, 1);
  const rootBytes = signedRoot(rootPayloadFor(1, keys), keys.root);
  await addRoot(deps.store, rootBytes, deps.now());
  // One token per role, made up front so that token(role) can answer at once.
  const tokens = new Map<Role, string>();
  for (const role of ROLES)
    tokens.set(role, (await createOpsToken(deps.store, role, `test-${role}`, deps.now())).token);
  return {
    app,
    deps,
    dataDir,
    routes,
    keys,
    rootBytes,
    chunkFiles: createChunkStore(join(dataDir, 'chunks')),
    token(role) {
      return tokens.get(role)!;
    },
    async publish(manifest, by = 'test', now = deps.now()) {
      return (await publishRelease(deps.store, manifest, by, now)).release;
    },
    rollout(release, target, now = deps.now()) {
      return deps.store.rollouts.start({ releaseId: release.id, target, createdBy: 'test' }, now);
    },
    async listen() {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const a = app.server.address();
      return `${opts.tls ? 'https' : 'http'}://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    },
    reloadTls,
    async sameData() {
      return mode ? { store: await mode.reopen() } : {};
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
