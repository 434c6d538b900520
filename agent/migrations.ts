import type { Migration } from '../shared/sqlite.js';

export const AGENT_MIGRATIONS: Migration[] = [
  {
    id: 1,
    name: 'state and events',
    sql: `
      CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL);
      -- Events for shore, ordered by seq (never by the clock); the telemetry shipper drains this table.
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL
      );
    `,
  },
];
