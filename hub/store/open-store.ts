import { join } from 'node:path';
import { z } from 'zod';
import { loadJsonConfig } from '../../shared/config-file.js';
import { openChunkStore } from './chunk-stores.js';
import type { HubStore } from './hub-store.js';
import { openPgHubStore } from './postgres/pg-hub-store.js';
import { openSqliteHubStore } from './sqlite/sqlite-hub-store.js';
import { HubStoreConfigError } from './store-config-error.js';

export { HubStoreConfigError };

/**
 * Where the hub keeps its state: the embedded default is a data directory (SQLite hub.db and chunks/);
 * the scale-out setup is a PostgreSQL URL for the records and a chunk location (a folder every hub
 * process shares, or s3://BUCKET/PREFIX) for the chunks.
 */
export interface HubStoreLocation {
  /** The embedded store's folder; with `db`, only where chunks go when `chunks` is not given. */
  dataDir?: string;
  /** postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://). */
  db?: string;
  /** A folder, or s3://BUCKET/PREFIX. */
  chunks?: string;
}

/** The hub's config file (`--config FILE`): the same choices as the flags, which win over it. */
export const hubConfigSchema = z
  .object({
    data: z.string().min(1).optional(),
    db: z.string().min(1).optional(),
    chunks: z.string().min(1).optional(),
    listen: z.string().min(1).optional(),
    /** Size of the PostgreSQL pool per hub process. */
    dbPool: z.number().int().min(1).max(200).optional(),
    /** Also one metric series per vessel (backlog, drops). */
    perVesselMetrics: z.boolean().optional(),
  })
  .strict();
export type HubConfig = z.infer<typeof hubConfigSchema>;

export function loadHubConfig(path: string): HubConfig {
  return loadJsonConfig(path, hubConfigSchema, 'give the path of the hub config file');
}

const PG_URL = /^postgres(ql)?:\/\//;

/** Opens the store a location names; every refusal names the setting at fault. */
export async function openHubStore(
  loc: HubStoreLocation,
  opts: { pool?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<HubStore> {
  if (loc.db === undefined) {
    if (loc.chunks !== undefined)
      throw new HubStoreConfigError('--chunks needs --db: the embedded store keeps its chunks in DATA/chunks');
    if (!loc.dataDir) throw new HubStoreConfigError('give --data DIR (embedded SQLite) or --db postgres://...');
    return openSqliteHubStore(loc.dataDir);
  }
  if (!PG_URL.test(loc.db))
    throw new HubStoreConfigError(`--db must be a postgres://USER:PASSWORD@HOST:PORT/DB URL, got ${redact(loc.db)}`);
  const where = loc.chunks ?? (loc.dataDir ? join(loc.dataDir, 'chunks') : undefined);
  if (where === undefined)
    throw new HubStoreConfigError('--db needs a chunk store: --chunks DIR or s3://BUCKET/PREFIX (or --data DIR)');
  const chunks = await openChunkStore(where, opts.env);
  return openPgHubStore(loc.db, chunks, { max: opts.pool });
}

/** A database URL for a message or log: the password replaced. */
export function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}
