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
  {
    id: 2,
    name: 'releases on board and the update journal',
    sql: `
      CREATE TABLE releases (
        version TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        state TEXT NOT NULL,            -- staged | live | kept | failed
        installed_at INTEGER NOT NULL,
        last_live_at INTEGER,
        failed_reason TEXT
      );
      CREATE TABLE updates (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,             -- update | rollback | auto-rollback | recovery
        from_release TEXT,
        to_release TEXT NOT NULL,
        state TEXT NOT NULL,            -- running | done | failed
        reason TEXT,
        actor TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      -- Every step of an update is written here before it is carried out.
      CREATE TABLE update_steps (
        update_id INTEGER NOT NULL REFERENCES updates(id),
        idx INTEGER NOT NULL,
        phase TEXT NOT NULL,            -- forward | undo
        step TEXT NOT NULL,
        state TEXT NOT NULL,            -- pending | done
        at INTEGER,
        PRIMARY KEY (update_id, idx)
      );
    `,
  },
  {
    id: 3,
    name: 'events moved to the telemetry outbox',
    sql: 'DROP TABLE events;',
  },
  {
    id: 4,
    name: 'update owner identity survives pid reuse',
    sql: "ALTER TABLE updates ADD COLUMN pid_start TEXT NOT NULL DEFAULT '';",
  },
];
