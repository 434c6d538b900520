import { randomBytes } from 'node:crypto';
import type { Db } from '../../../shared/sqlite.js';
import { HubStoreError, type Vessel, type VesselRecords } from '../hub-store.js';
import type { AuditWriter } from './audit.js';
import { cachedStatement, isUniqueViolation, parseJson } from './sql.js';
import type { TokenWriter } from './enrolment.js';

interface Row {
  id: string;
  name: string;
  groups: string;
  public_key: string | null;
  created_at: number;
  enrolled_at: number | null;
  revoked_at: number | null;
  last_contact: number | null;
  last_address: string | null;
  current_release: string | null;
  agent_version: string | null;
  status: string | null;
  status_received_at?: number | null;
}

export function vesselFromRow(r: Row): Vessel {
  return {
    id: r.id,
    name: r.name,
    groups: JSON.parse(r.groups) as string[],
    publicKey: r.public_key,
    createdAt: r.created_at,
    enrolledAt: r.enrolled_at,
    revokedAt: r.revoked_at,
    lastContact: r.last_contact,
    lastAddress: r.last_address,
    currentRelease: r.current_release,
    agentVersion: r.agent_version,
    status: r.status === null ? null : parseJson(r.status),
    statusReceivedAt: r.status_received_at ?? null,
  };
}

// Groups are a JSON array in one column (the schema of migration 1); json_each filters on it in SQL.
export const IN_GROUP = 'EXISTS (SELECT 1 FROM json_each(vessels.groups) WHERE json_each.value = ?)';

export function sqliteVessels(db: Db, audit: AuditWriter, insertToken: TokenWriter): VesselRecords {
  const byId = db.prepare<[string], Row>('SELECT * FROM vessels WHERE id = ?');
  const byName = db.prepare<[string], Row>('SELECT * FROM vessels WHERE name = ?');
  const insert = db.prepare('INSERT INTO vessels (id, name, groups, created_at) VALUES (?, ?, ?, ?)');
  const touch = db.prepare('UPDATE vessels SET last_contact = ?, last_address = ? WHERE id = ?');
  // A report timed before the stored one changes nothing (status_at NULL: none stored, or untimed ones).
  const report = db.prepare(
    `UPDATE vessels SET current_release = ?, agent_version = ?, status = ?, status_at = COALESCE(?, status_at),
       status_received_at = ?, status_flags = ?
     WHERE id = ? AND (? IS NULL OR status_at IS NULL OR status_at <= ?)`,
  );
  const revoke = db.prepare('UPDATE vessels SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const cancelTokens = db.prepare(
    'UPDATE enrolment_tokens SET expires_at = 0 WHERE vessel_id = ? AND used_at IS NULL AND expires_at > ?',
  );
  const counts = db.prepare<[number], { total: number; active: number }>(
    `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN last_contact >= ? THEN 1 ELSE 0 END), 0) AS active
     FROM vessels WHERE revoked_at IS NULL`,
  );

  return {
    async get(id) {
      const r = byId.get(id);
      return r && vesselFromRow(r);
    },
    async getByName(name) {
      const r = byName.get(name);
      return r && vesselFromRow(r);
    },
    async list(q) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (q.group !== undefined) {
        where.push(IN_GROUP);
        args.push(q.group);
      }
      if (q.after !== undefined) {
        where.push('name > ?');
        args.push(q.after);
      }
      args.push(q.limit, q.offset ?? 0);
      const sql = `SELECT * FROM vessels ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                   ORDER BY name LIMIT ? OFFSET ?`;
      return cachedStatement<Row>(db, sql)
        .all(...args)
        .map(vesselFromRow);
    },
    async create(v, now) {
      const id = `v_${randomBytes(8).toString('hex')}`;
      try {
        db.transaction(() => {
          insert.run(id, v.name, JSON.stringify([...new Set(v.groups)].sort()), now);
          if (v.token) insertToken(id, v.token, now);
          audit(v.audit, now);
        })();
      } catch (err) {
        if (isUniqueViolation(err) && byName.get(v.name))
          throw new HubStoreError(`vessel ${v.name} already exists`, 'exists', 409);
        throw err;
      }
      return vesselFromRow(byId.get(id)!);
    },
    async touch(id, address, now) {
      touch.run(now, address, id);
    },
    async report(id, r, at) {
      const t = at ?? null;
      const args = [r.currentRelease, r.agentVersion, JSON.stringify(r.status ?? null), t];
      return report.run(...args, r.receivedAt ?? null, r.flags ?? '', id, t, t).changes === 1;
    },
    async revoke(id, now, entry) {
      return db.transaction(() => {
        const tokensCancelled = cancelTokens.run(id, now).changes;
        const revoked = revoke.run(now, id).changes === 1;
        audit(entry, now);
        return { revoked, tokensCancelled };
      })();
    },
    async counts(activeSince) {
      return counts.get(activeSince)!;
    },
  };
}
