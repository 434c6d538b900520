import { randomBytes } from 'node:crypto';
import type { Db } from '../../shared/sqlite.js';
import { TenderError } from '../../shared/errors.js';

export class VesselStoreError extends TenderError {}

// The name patterns are part of the hub<->vessel contract.
export { groupNameSchema, vesselNameSchema } from '../../shared/protocol/names.js';

// A vessel counts as active when it has been heard from this recently (the definition).
export const ACTIVE_WINDOW_MS = 15 * 60 * 1000;

export interface Vessel {
  id: string;
  name: string;
  groups: string[];
  publicKey: string | null;
  createdAt: number;
  enrolledAt: number | null;
  revokedAt: number | null;
  lastContact: number | null;
  currentRelease: string | null;
  agentVersion: string | null;
  status: unknown;
}

interface Row {
  id: string;
  name: string;
  groups: string;
  public_key: string | null;
  created_at: number;
  enrolled_at: number | null;
  revoked_at: number | null;
  last_contact: number | null;
  current_release: string | null;
  agent_version: string | null;
  status: string | null;
}

function fromRow(r: Row): Vessel {
  return {
    id: r.id,
    name: r.name,
    groups: JSON.parse(r.groups) as string[],
    publicKey: r.public_key,
    createdAt: r.created_at,
    enrolledAt: r.enrolled_at,
    revokedAt: r.revoked_at,
    lastContact: r.last_contact,
    currentRelease: r.current_release,
    agentVersion: r.agent_version,
    status: r.status ? (JSON.parse(r.status) as unknown) : null,
  };
}

export type VesselStore = ReturnType<typeof createVesselStore>;

export function createVesselStore(db: Db) {
  const byId = db.prepare<[string], Row>('SELECT * FROM vessels WHERE id = ?');
  const byName = db.prepare<[string], Row>('SELECT * FROM vessels WHERE name = ?');
  const list = db.prepare<[number, number], Row>('SELECT * FROM vessels ORDER BY name LIMIT ? OFFSET ?');
  const insert = db.prepare('INSERT INTO vessels (id, name, groups, created_at) VALUES (?, ?, ?, ?)');
  const touch = db.prepare('UPDATE vessels SET last_contact = ?, last_address = ? WHERE id = ?');
  const report = db.prepare('UPDATE vessels SET current_release = ?, agent_version = ?, status = ? WHERE id = ?');
  const revoke = db.prepare('UPDATE vessels SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const counts = db.prepare<[number], { total: number; active: number }>(
    'SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN last_contact >= ? THEN 1 ELSE 0 END), 0) AS active FROM vessels WHERE revoked_at IS NULL',
  );

  return {
    get(id: string): Vessel | undefined {
      const r = byId.get(id);
      return r && fromRow(r);
    },
    getByName(name: string): Vessel | undefined {
      const r = byName.get(name);
      return r && fromRow(r);
    },
    list(limit = 1000, offset = 0): Vessel[] {
      return list.all(limit, offset).map(fromRow);
    },
    create(name: string, groups: string[], now = Date.now()): Vessel {
      if (byName.get(name)) throw new VesselStoreError(`vessel ${name} already exists`, 'exists', 1, 409);
      const id = `v_${randomBytes(8).toString('hex')}`;
      insert.run(id, name, JSON.stringify([...new Set(groups)].sort()), now);
      return fromRow(byId.get(id)!);
    },
    touch(id: string, address: string, now = Date.now()): void {
      touch.run(now, address, id);
    },
    report(id: string, currentRelease: string | null, agentVersion: string, status: unknown): void {
      report.run(currentRelease, agentVersion, JSON.stringify(status), id);
    },
    revoke(id: string, now = Date.now()): boolean {
      return revoke.run(now, id).changes === 1;
    },
    counts(now = Date.now()): { total: number; active: number } {
      return counts.get(now - ACTIVE_WINDOW_MS)!;
    },
  };
}
