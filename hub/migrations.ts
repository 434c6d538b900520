import type { Migration } from '../shared/sqlite.js';

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
];
