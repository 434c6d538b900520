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
  {
    id: 5,
    name: 'the releases table says which release serves (the kv copy release.current is dropped)',
    // Serving is apart from state: a release that fails its watch window with nothing to go back to is
    // marked failed and still serves. Old databases: the live row, else what release.current named.
    sql: `
      ALTER TABLE releases ADD COLUMN serving INTEGER NOT NULL DEFAULT 0;
      UPDATE releases SET serving = 1 WHERE state = 'live';
      UPDATE releases SET serving = 1
        WHERE NOT EXISTS (SELECT 1 FROM releases WHERE state = 'live')
          AND version = (SELECT CASE WHEN json_valid(value) THEN json_extract(value, '$') END
                           FROM kv WHERE key = 'release.current');
      DELETE FROM kv WHERE key = 'release.current';
    `,
  },
  {
    id: 6,
    name: 'a crew hold is one key (was release.held and hold.sequence)',
    sql: `
      INSERT INTO kv (key, value, updated_at)
        SELECT 'crew.hold', json_object('sequence', COALESCE((
            SELECT json_extract(value, '$') FROM kv
             WHERE key = 'hold.sequence' AND (CASE WHEN json_valid(value) THEN json_type(value) END) = 'integer'
          ), 0)), updated_at
          FROM kv WHERE key = 'release.held' AND value = 'true';
      DELETE FROM kv WHERE key IN ('release.held', 'hold.sequence');
    `,
  },
  {
    id: 7,
    name: 'manifests refused, one row each (were kv keys refused.manifest.<app>@<version>#<sequence>)',
    sql: `
      CREATE TABLE refused_manifests (
        release TEXT PRIMARY KEY,       -- app@version#sequence
        reason TEXT NOT NULL,
        refused_at INTEGER NOT NULL
      );
      INSERT INTO refused_manifests (release, reason, refused_at)
        SELECT substr(key, 18), COALESCE(CASE WHEN json_valid(value) THEN json_extract(value, '$') ELSE value END, ''),
               updated_at
          FROM kv WHERE substr(key, 1, 17) = 'refused.manifest.';
      DELETE FROM kv WHERE substr(key, 1, 17) = 'refused.manifest.';
    `,
  },
  {
    id: 8,
    name: 'a release on board is known by app, version and manifest digest (was version alone); updates name their app',
    // The digest of rows from before is filled in at open (board-releases.ts): SQLite has no sha256.
    sql: `
      CREATE TABLE releases_v8 (
        app TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,           -- sha256 hex of the signed manifest envelope's bytes
        sequence INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        state TEXT NOT NULL,            -- staged | live | kept | failed
        installed_at INTEGER NOT NULL,
        last_live_at INTEGER,
        failed_reason TEXT,
        serving INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, version)
      );
      INSERT INTO releases_v8 (app, version, digest, sequence, envelope, state, installed_at, last_live_at,
                               failed_reason, serving)
        SELECT app, version, '', sequence, envelope, state, installed_at, last_live_at, failed_reason, serving
          FROM releases;
      DROP TABLE releases;
      ALTER TABLE releases_v8 RENAME TO releases;
      ALTER TABLE updates ADD COLUMN app TEXT NOT NULL DEFAULT '';
      UPDATE updates SET app = COALESCE((SELECT r.app FROM releases r WHERE r.version = updates.to_release), '');
      -- The highest sequence each app has run, kept when its release is pruned: older ones stay refused.
      CREATE TABLE app_sequences (app TEXT PRIMARY KEY, sequence INTEGER NOT NULL);
      INSERT INTO app_sequences (app, sequence)
        SELECT app, MAX(sequence) FROM releases WHERE last_live_at IS NOT NULL GROUP BY app;
    `,
  },
];
