import type { Migration } from '../../shared/sqlite.js';

// What a rollout made before waves existed meant: everything at once, every vessel must succeed.
const LEGACY_ROLLOUT_RULES =
  '{"waves":[100],"threshold":{"kind":"min-success","percent":100},' +
  '"minDone":1,"quorumPercent":100,"deadlineMs":null}';

export const HUB_MIGRATIONS: Migration[] = [
  {
    id: 1,
    name: 'vessels, tokens, roots',
    sql: `
      CREATE TABLE vessels (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        groups TEXT NOT NULL DEFAULT '[]',
        public_key TEXT,
        created_at INTEGER NOT NULL,
        enrolled_at INTEGER,
        revoked_at INTEGER,
        last_contact INTEGER,
        last_address TEXT,
        current_release TEXT,
        agent_version TEXT,
        status TEXT
      );
      CREATE TABLE enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        kind TEXT NOT NULL CHECK (kind IN ('online', 'offline')),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER,
        used_by TEXT
      );
      CREATE INDEX enrolment_tokens_vessel ON enrolment_tokens(vessel_id);
      CREATE TABLE ops_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE TABLE roots (
        version INTEGER PRIMARY KEY,
        envelope BLOB NOT NULL,
        expires TEXT NOT NULL,
        added_at INTEGER NOT NULL
      );
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
      );
    `,
  },
  {
    id: 2,
    name: 'releases and rollouts',
    sql: `
      CREATE TABLE releases (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        version TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        published_by TEXT NOT NULL,
        UNIQUE (app, version),
        UNIQUE (app, sequence)
      );
      CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY,
        release_id INTEGER NOT NULL REFERENCES releases(id),
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
      );
      -- The release each vessel should run now.
      CREATE TABLE vessel_targets (
        vessel_id TEXT PRIMARY KEY REFERENCES vessels(id),
        release_id INTEGER NOT NULL REFERENCES releases(id),
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
        set_at INTEGER NOT NULL
      );
      -- Every release ever targeted at a vessel: what it may download.
      CREATE TABLE vessel_releases (
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        release_id INTEGER NOT NULL REFERENCES releases(id),
        PRIMARY KEY (vessel_id, release_id)
      );
    `,
  },
  {
    id: 3,
    name: 'telemetry',
    sql: `
      CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        vessel_id TEXT NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        service TEXT NOT NULL,
        level TEXT NOT NULL,
        line TEXT NOT NULL,
        ts_vessel INTEGER NOT NULL,
        ts_received INTEGER NOT NULL,
        boot_id TEXT NOT NULL,
        UNIQUE (vessel_id, epoch, seq)
      );
      CREATE INDEX logs_vessel_time ON logs (vessel_id, ts_vessel);
      CREATE VIRTUAL TABLE logs_fts USING fts5 (line, content = 'logs', content_rowid = 'id');
      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        vessel_id TEXT NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        ts_vessel INTEGER NOT NULL,
        ts_received INTEGER NOT NULL,
        UNIQUE (vessel_id, epoch, seq)
      );
      CREATE INDEX events_vessel ON events (vessel_id, id);
      CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        vessel_id TEXT NOT NULL,
        epoch TEXT NOT NULL,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        value REAL NOT NULL,
        ts_vessel INTEGER NOT NULL,
        ts_received INTEGER NOT NULL,
        UNIQUE (vessel_id, epoch, seq)
      );
      CREATE INDEX metrics_vessel_name_time ON metrics (vessel_id, name, ts_vessel);
      CREATE INDEX metrics_received ON metrics (ts_received);
      CREATE TABLE vessel_telemetry (
        vessel_id TEXT PRIMARY KEY REFERENCES vessels(id),
        backlog INTEGER NOT NULL DEFAULT 0,
        drops TEXT NOT NULL DEFAULT '{}',
        records_received INTEGER NOT NULL DEFAULT 0,
        bytes_received INTEGER NOT NULL DEFAULT 0,
        last_batch_at INTEGER
      );
    `,
  },
  {
    id: 4,
    name: 'packs',
    sql: `
      -- A pack is a fixed list of chunks for one vessel: its bytes are stable, so a cut download resumes
      -- at any byte, across restarts of either side.
      CREATE TABLE packs (
        id TEXT PRIMARY KEY,
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        release_id INTEGER NOT NULL REFERENCES releases(id),
        digests BLOB NOT NULL,
        length INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    id: 5,
    name: 'backup policies and backups ashore',
    sql: `
      -- Signed backup policies as published (the hub stores envelopes; it cannot sign). Every sequence is
      -- kept: a vessel an older sequence named learns from the newer one that it is no longer named.
      CREATE TABLE backup_policies (
        name TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        targets TEXT NOT NULL,
        envelope BLOB NOT NULL,
        published_at INTEGER NOT NULL,
        published_by TEXT NOT NULL,
        PRIMARY KEY (name, sequence)
      );
      CREATE TABLE backups_ashore (
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        id TEXT NOT NULL,
        policy TEXT NOT NULL,
        policy_sequence INTEGER NOT NULL,
        method TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        raw_bytes INTEGER NOT NULL,
        raw_sha256 TEXT,
        seal_key_id TEXT,
        seal_header TEXT,
        -- Chunk ids in order, 32 raw bytes each.
        chunks BLOB NOT NULL,
        chunk_count INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (vessel_id, id)
      );
      CREATE INDEX backups_ashore_policy ON backups_ashore (vessel_id, policy, started_at);
      -- Which backups name which chunk: a chunk no row names is deleted by the hub's retention.
      CREATE TABLE backup_chunk_refs (
        vessel_id TEXT NOT NULL,
        backup_id TEXT NOT NULL,
        digest BLOB NOT NULL,
        PRIMARY KEY (vessel_id, backup_id, digest)
      );
      CREATE INDEX backup_chunk_refs_digest ON backup_chunk_refs (digest);
      -- What vessels reported of their backups (backup.* events): the page's column and alarms ashore.
      CREATE TABLE vessel_backup_state (
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        policy TEXT NOT NULL,
        last_good_id TEXT,
        last_good_at INTEGER,
        alarm_kind TEXT,
        alarm_reason TEXT,
        alarm_since INTEGER,
        PRIMARY KEY (vessel_id, policy)
      );
    `,
  },
  {
    id: 6,
    name: 'rollouts in waves, per-app targets, maintenance windows, rollback directives',
    sql: `
      -- A rollout is a plan the hub executes: its rules, the wave it is in, and why it stopped.
      ALTER TABLE rollouts ADD COLUMN app TEXT NOT NULL DEFAULT '';
      ALTER TABLE rollouts ADD COLUMN kind TEXT NOT NULL DEFAULT 'release';
      ALTER TABLE rollouts ADD COLUMN rules TEXT NOT NULL DEFAULT '${LEGACY_ROLLOUT_RULES}';
      ALTER TABLE rollouts ADD COLUMN canary TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE rollouts ADD COLUMN current_wave INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE rollouts ADD COLUMN wave_started_at INTEGER;
      ALTER TABLE rollouts ADD COLUMN reason TEXT;
      ALTER TABLE rollouts ADD COLUMN counts TEXT;
      ALTER TABLE rollouts ADD COLUMN directive_id INTEGER;
      ALTER TABLE rollouts ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
      UPDATE rollouts SET app = (SELECT app FROM releases WHERE releases.id = rollouts.release_id),
        wave_started_at = created_at, updated_at = created_at;
      CREATE INDEX rollouts_state ON rollouts (state);
      -- Each targeted vessel's wave and outcome in a rollout.
      CREATE TABLE rollout_vessels (
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        wave INTEGER NOT NULL,
        started_at INTEGER,
        outcome TEXT NOT NULL DEFAULT 'pending',
        failure TEXT,
        reason TEXT,
        progress TEXT,
        until TEXT,
        reported_at INTEGER,
        event_epoch TEXT,
        event_seq INTEGER,
        superseded_by INTEGER,
        PRIMARY KEY (rollout_id, vessel_id)
      );
      CREATE INDEX rollout_vessels_vessel ON rollout_vessels (vessel_id, rollout_id);
      INSERT INTO rollout_vessels (rollout_id, vessel_id, wave, started_at)
        SELECT rollout_id, vessel_id, 0, set_at FROM vessel_targets;
      -- The release each vessel should run now, per app (several apps per vessel).
      CREATE TABLE app_targets (
        vessel_id TEXT NOT NULL REFERENCES vessels(id),
        app TEXT NOT NULL,
        release_id INTEGER NOT NULL REFERENCES releases(id),
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
        set_at INTEGER NOT NULL,
        PRIMARY KEY (vessel_id, app)
      );
      INSERT INTO app_targets (vessel_id, app, release_id, rollout_id, set_at)
        SELECT t.vessel_id, r.app, t.release_id, t.rollout_id, t.set_at
        FROM vessel_targets t JOIN releases r ON r.id = t.release_id;
      CREATE INDEX app_targets_rollout ON app_targets (rollout_id);
      -- When a vessel may switch: per vessel (vessel:NAME) or group (group:G).
      CREATE TABLE maintenance_windows (
        scope TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        set_by TEXT NOT NULL
      );
      -- Signed rollback directives, exact bytes; the hub hands them on, it cannot make one.
      CREATE TABLE rollback_directives (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        version TEXT NOT NULL,
        counter INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        targets TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (app, counter)
      );
    `,
  },
  {
    id: 7,
    name: 'request replay keys, status report order, re-key tokens, ops token expiry',
    sql: `
      -- Signed vessel requests seen inside the clock window: a second use of one is a replay.
      CREATE TABLE vessel_requests (
        vessel_id TEXT NOT NULL,
        request_key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (vessel_id, request_key)
      ) WITHOUT ROWID;
      CREATE INDEX vessel_requests_expiry ON vessel_requests (vessel_id, expires_at);
      -- The vessel time of the status report stored, so an older one (replayed or late) cannot overwrite it.
      ALTER TABLE vessels ADD COLUMN status_at INTEGER;
      -- A token that may replace the key of an enrolled vessel (issued by an admin, cancels the others).
      ALTER TABLE enrolment_tokens ADD COLUMN rekey INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE ops_tokens ADD COLUMN expires_at INTEGER;
    `,
  },
  {
    id: 8,
    name: 'status report age and flags, page sessions',
    sql: `
      -- When the hub received the stored status report (hub time): the page shows every fact with its age.
      ALTER TABLE vessels ADD COLUMN status_received_at INTEGER;
      -- What the report says in a word per fact, ",failing,held," (hub/page/facts.ts): the fleet filter.
      ALTER TABLE vessels ADD COLUMN status_flags TEXT NOT NULL DEFAULT '';
      -- Signed-in browsers: the sha256 of the cookie's secret, the ops token behind it, the CSRF secret.
      CREATE TABLE page_sessions (
        id_hash TEXT PRIMARY KEY,
        token_id TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX page_sessions_expiry ON page_sessions (expires_at);
    `,
  },
  {
    id: 9,
    name: 'download settings per vessel or group',
    sql: `
      -- Download settings the hub sets (vessel:NAME or group:G), as JSON; the hub's win over agent.json's.
      CREATE TABLE vessel_settings (
        scope TEXT PRIMARY KEY,
        settings TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        set_by TEXT NOT NULL
      );
    `,
  },
  {
    id: 10,
    name: "the hub's TLS trust, announced",
    sql: `
      -- Signed hub-tls announcements (the CAs vessels pin for the hub), as published; the newest is in force.
      CREATE TABLE hub_tls (
        sequence INTEGER PRIMARY KEY,
        envelope BLOB NOT NULL,
        published_at INTEGER NOT NULL,
        published_by TEXT NOT NULL
      );
    `,
  },
];
