import { readFileSync } from 'node:fs';
import {
  listOpt,
  positional,
  requiredOpt,
  stringOpt,
  table,
  type Command,
  type CommandContext,
} from '../../shared/cli.js';
import { UsageError } from '../../shared/errors.js';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { createLogger } from '../../shared/log.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../../shared/ops-client.js';
import { MEDIA } from '../../shared/protocol/http.js';
import { paths, ROUTES } from '../../shared/protocol/routes.js';
import { parseDuration } from '../../shared/duration.js';
import type { EnrolmentFile } from '../../shared/protocol/enrolment-file.js';
import { createOpsToken, ROLES, type Role } from '../ops-tokens.js';
import { ago } from '../page/status-page.js';
import { loadHubConfig, type HubStoreLocation } from '../store/open-store.js';
import { hubMigrate } from './hub-migrate.js';

// Loopback by default: exposing the hub is a decision for the operator (or a reverse proxy with TLS).
export const DEFAULT_HUB_LISTEN = '127.0.0.1:8420';

export const hubServe: Command = {
  path: ['hub', 'serve'],
  summary: 'run the shore hub (API, status page, metrics)',
  options: {
    data: { type: 'string', description: 'data directory (SQLite database and chunk store)' },
    db: {
      type: 'string',
      description: 'postgres://USER:PASSWORD@HOST:PORT/DB: keep the records in PostgreSQL (several hubs)',
    },
    chunks: { type: 'string', description: 'with --db: chunk folder shared by the hubs, or s3://BUCKET/PREFIX' },
    config: {
      type: 'string',
      description: 'hub config file (JSON: data, db, chunks, listen, dbPool, perVesselMetrics)',
    },
    listen: { type: 'string', description: 'HOST:PORT to listen on', default: DEFAULT_HUB_LISTEN },
    'per-vessel-metrics': {
      type: 'boolean',
      description: 'also one /metrics series per vessel for backlog and drops (off: bounded series at any fleet size)',
    },
    root: { type: 'string', description: 'a signed root document to trust (first start) or rotate to' },
    'tls-cert': { type: 'string', description: 'PEM certificate chain to serve HTTPS with (reloaded on SIGHUP)' },
    'tls-key': { type: 'string', description: 'PEM private key of the first certificate in --tls-cert' },
    'tls-ca': {
      type: 'string',
      description: 'the self-signed CA vessels pin at enrolment, when --tls-cert does not end with it',
    },
  },
  async run(ctx) {
    const c = hubSettings(ctx);
    // The server (fastify, its plugins, every route) loads only for the command that runs it: every other
    // `tender` command, on shore and on board, starts without it.
    const { serveHub } = await import('../server.js');
    const certFile = stringOpt(ctx, 'tls-cert');
    const keyFile = stringOpt(ctx, 'tls-key');
    if (!certFile !== !keyFile) throw new UsageError('pass --tls-cert and --tls-key together');
    if (stringOpt(ctx, 'tls-ca') && !certFile) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
    await serveHub({
      store: c.store,
      listen: c.listen ?? DEFAULT_HUB_LISTEN,
      tls: certFile && keyFile ? { certFile, keyFile, caFile: stringOpt(ctx, 'tls-ca') } : undefined,
      rootFile: stringOpt(ctx, 'root'),
      logger: createLogger('hub'),
      pool: c.pool,
      perVesselMetrics: c.perVesselMetrics,
    });
    return undefined;
  },
};

/**
 * The store and address from flags, then the environment (TENDER_HUB_DB, TENDER_HUB_CHUNKS: a password
 * kept out of the process list), then --config FILE.
 */
export function hubSettings(ctx: CommandContext): {
  store: HubStoreLocation;
  listen?: string;
  pool?: number;
  perVesselMetrics?: boolean;
} {
  const file = stringOpt(ctx, 'config');
  const cfg = file ? loadHubConfig(file) : {};
  return {
    store: {
      dataDir: stringOpt(ctx, 'data') ?? cfg.data,
      db: stringOpt(ctx, 'db') ?? nonEmpty(ctx.env.TENDER_HUB_DB) ?? cfg.db,
      chunks: stringOpt(ctx, 'chunks') ?? nonEmpty(ctx.env.TENDER_HUB_CHUNKS) ?? cfg.chunks,
    },
    listen: stringOpt(ctx, 'listen') ?? cfg.listen,
    pool: cfg.dbPool,
    perVesselMetrics: ctx.values['per-vessel-metrics'] === true || cfg.perVesselMetrics === true,
  };
}
const nonEmpty = (s: string | undefined) => (s ? s : undefined);

export const hubTokenCreate: Command = {
  path: ['hub', 'token', 'create'],
  summary: 'create an ops token directly in the hub database (bootstrap; later use the API)',
  options: {
    data: { type: 'string', description: 'hub data directory (embedded SQLite)' },
    db: { type: 'string', description: "postgres://... : the hubs' PostgreSQL (or TENDER_HUB_DB), as hub serve" },
    chunks: { type: 'string', description: 'with --db: the chunk store, as hub serve (or TENDER_HUB_CHUNKS)' },
    config: { type: 'string', description: 'the hub config file hub serve reads (data, db, chunks)' },
    role: { type: 'string', description: `one of ${ROLES.join(', ')}` },
    name: { type: 'string', description: 'who or what the token is for', default: 'cli' },
    expires: { type: 'string', description: 'lifetime (e.g. 30d, 12h)', default: '90d' },
  },
  async run(ctx) {
    const role = requiredOpt(ctx, 'role');
    if (!(ROLES as readonly string[]).includes(role))
      throw new UsageError(`--role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`);
    // The store hub serve would open with the same flags, environment or config: SQLite or PostgreSQL.
    const { openHubStore } = await import('../store/open-store.js');
    const store = await openHubStore(hubSettings(ctx).store, { env: ctx.env });
    try {
      const now = Date.now();
      const ttl = parseDuration(stringOpt(ctx, 'expires') ?? '90d', '--expires');
      const t = await createOpsToken(store, role as Role, stringOpt(ctx, 'name') ?? 'cli', now, undefined, now + ttl);
      return { id: t.id, role, token: t.token, expiresAt: new Date(now + ttl).toISOString() };
    } finally {
      await store.close();
    }
  },
  human: (r: { token: string }) => r.token,
};

export const hubRootPush: Command = {
  path: ['hub', 'root', 'push'],
  args: 'FILE',
  summary: 'upload the next signed root document to the hub (admin)',
  options: HUB_OPTIONS,
  async run(ctx) {
    const file = positional(ctx, 0, 'FILE');
    const raw = readFileSync(file);
    return opsCall(resolveHubTarget(ctx), ROUTES.pushRoot, paths.roots(), undefined, {
      raw,
      contentType: MEDIA.envelope,
    });
  },
  human: (r: { version: number; expires: string }) => `hub now serves root v${r.version} (expires ${r.expires})`,
};

interface IssuedToken {
  vessel: string;
  token: string;
  expiresAt: string;
  root?: string;
  hubCa?: string;
}

function writeOfflineFile(path: string, hub: string, issued: IssuedToken): void {
  const file: EnrolmentFile = {
    kind: 'tender-enrolment',
    version: 1,
    hub,
    vessel: issued.vessel,
    token: issued.token,
    expiresAt: issued.expiresAt,
    root: issued.root!,
    ...(issued.hubCa ? { hubCa: issued.hubCa } : {}),
  };
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
}

export const vesselAdd: Command = {
  path: ['vessel', 'add'],
  args: 'NAME',
  summary: 'register a vessel and print its one-time enrolment token (or write an offline enrolment file)',
  options: {
    ...HUB_OPTIONS,
    group: { type: 'string', multiple: true, description: 'group the vessel belongs to' },
    'offline-file': {
      type: 'string',
      description: 'write an enrolment file for a vessel with no link instead of printing a token',
    },
    'vessel-hub': { type: 'string', description: 'hub URL as the vessel will reach it (default: --hub)' },
    expires: { type: 'string', description: 'token lifetime', default: '7d online, 90d offline' },
  },
  async run(ctx) {
    const name = positional(ctx, 0, 'NAME');
    const target = resolveHubTarget(ctx);
    const offlineFile = stringOpt(ctx, 'offline-file');
    const expires = stringOpt(ctx, 'expires');
    const issued = await opsCall(target, ROUTES.addVessel, paths.vessels(), {
      name,
      groups: listOpt(ctx, 'group'),
      offline: offlineFile !== undefined,
      ttlSeconds: expires ? parseDuration(expires, '--expires') / 1000 : undefined,
    });
    if (offlineFile) {
      writeOfflineFile(offlineFile, stringOpt(ctx, 'vessel-hub') ?? target.hub, issued);
      return { vessel: name, offlineFile, expiresAt: issued.expiresAt };
    }
    return { vessel: name, token: issued.token, expiresAt: issued.expiresAt };
  },
  human: (r: { vessel: string; token?: string; offlineFile?: string; expiresAt: string }) =>
    r.offlineFile
      ? `enrolment file for ${r.vessel} written to ${r.offlineFile} (valid until ${r.expiresAt}); ` +
        `on the vessel: tender agent enroll --file ${r.offlineFile}`
      : `${r.token}\n# one-time token for ${r.vessel}, valid until ${r.expiresAt}; ` +
        'on the vessel: tender agent enroll --hub URL --token TOKEN',
};

interface VesselRow {
  name: string;
  groups: string[];
  state: string;
  currentRelease: string | null;
  lastContact: string | null;
  status: { backlog?: number } | null;
}

export const vesselList: Command = {
  path: ['vessel', 'list'],
  summary: 'the fleet in a table',
  options: { ...HUB_OPTIONS, group: { type: 'string', description: 'only this group' } },
  async run(ctx) {
    const group = stringOpt(ctx, 'group');
    return opsCall(resolveHubTarget(ctx), ROUTES.listVessels, paths.vessels({ group }));
  },
  human: (r: { vessels: VesselRow[] }) => {
    const now = Date.now();
    const rows = r.vessels.map((v) => [
      v.name,
      v.groups.join(',') || '-',
      v.currentRelease ?? '-',
      v.state,
      v.lastContact ? ago(Date.parse(v.lastContact), now) : 'never',
      String(v.status?.backlog ?? '-'),
    ]);
    return table(['NAME', 'GROUP', 'RELEASE', 'STATE', 'LAST CONTACT', 'BACKLOG'], rows);
  },
};

export const vesselRevoke: Command = {
  path: ['vessel', 'revoke'],
  args: 'NAME',
  summary: "revoke a vessel's credential: every later request from it is refused (admin)",
  options: HUB_OPTIONS,
  async run(ctx) {
    const name = positional(ctx, 0, 'NAME');
    return opsCall(resolveHubTarget(ctx), ROUTES.revokeVessel, paths.vesselRevoke(name), {});
  },
  human: (r: { name: string }) => `vessel ${r.name} revoked`,
};

export const vesselToken: Command = {
  path: ['vessel', 'token'],
  args: 'NAME',
  summary: 'another one-time enrolment token for a vessel not enrolled yet (enrolled ones: tender vessel rekey)',
  options: {
    ...HUB_OPTIONS,
    'offline-file': vesselAdd.options!['offline-file']!,
    expires: vesselAdd.options!.expires!,
  },
  async run(ctx) {
    const name = positional(ctx, 0, 'NAME');
    const target = resolveHubTarget(ctx);
    const offlineFile = stringOpt(ctx, 'offline-file');
    const expires = stringOpt(ctx, 'expires');
    const issued = await opsCall(target, ROUTES.issueToken, paths.vesselTokens(name), {
      offline: offlineFile !== undefined,
      ttlSeconds: expires ? parseDuration(expires, '--expires') / 1000 : undefined,
    });
    if (offlineFile) {
      writeOfflineFile(offlineFile, target.hub, issued);
      return { vessel: name, offlineFile, expiresAt: issued.expiresAt };
    }
    return { vessel: name, token: issued.token, expiresAt: issued.expiresAt };
  },
  human: vesselAdd.human!,
};

export const vesselRekey: Command = {
  path: ['vessel', 'rekey'],
  args: 'NAME',
  summary:
    "a one-time token that may replace an enrolled vessel's key (server swap, lost key); " +
    'cancels its other tokens (admin)',
  options: vesselToken.options!,
  async run(ctx) {
    const name = positional(ctx, 0, 'NAME');
    const target = resolveHubTarget(ctx);
    const offlineFile = stringOpt(ctx, 'offline-file');
    const expires = stringOpt(ctx, 'expires');
    const issued = await opsCall(target, ROUTES.rekeyVessel, paths.vesselRekey(name), {
      offline: offlineFile !== undefined,
      ttlSeconds: expires ? parseDuration(expires, '--expires') / 1000 : undefined,
    });
    if (offlineFile) {
      writeOfflineFile(offlineFile, target.hub, issued);
      return { vessel: name, offlineFile, expiresAt: issued.expiresAt, tokensCancelled: issued.tokensCancelled };
    }
    return { vessel: name, token: issued.token, expiresAt: issued.expiresAt, tokensCancelled: issued.tokensCancelled };
  },
  human: vesselAdd.human!,
};

export const HUB_COMMANDS = [
  hubServe,
  hubMigrate,
  hubTokenCreate,
  hubRootPush,
  vesselAdd,
  vesselList,
  vesselRevoke,
  vesselToken,
  vesselRekey,
];
