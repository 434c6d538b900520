import { randomBytes } from 'node:crypto';
import { HubStoreError, type Vessel, type VesselRecords } from '../hub-store.js';
import type { PgTokenWriter } from './enrolment.js';
import { isUniqueViolation, parseJson, type PgAuditWriter, type PgDb } from './pg.js';

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

// Groups are a JSON array in one text column (as on SQLite); containment filters on it in SQL.
export const IN_GROUP = 'vessels.groups::jsonb @> jsonb_build_array(?::text)';

export function pgVessels(db: PgDb, audit: PgAuditWriter, insertToken: PgTokenWriter): VesselRecords {
  const byId = async (id: string) => db.get<Row>('SELECT * FROM vessels WHERE id = ?', [id]);
  const byName = async (name: string) => db.get<Row>('SELECT * FROM vessels WHERE name = ?', [name]);
  return {
    async get(id) {
      const r = await byId(id);
      return r && vesselFromRow(r);
    },
    async getByName(name) {
      const r = await byName(name);
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
      return (await db.all<Row>(sql, args)).map(vesselFromRow);
    },
    async create(v, now) {
      const id = `v_${randomBytes(8).toString('hex')}`;
      try {
        await db.tx(async (q) => {
          await q.run('INSERT INTO vessels (id, name, groups, created_at) VALUES (?, ?, ?, ?)', [
            id,
            v.name,
            JSON.stringify([...new Set(v.groups)].sort()),
            now,
          ]);
          if (v.token) await insertToken(q, id, v.token, now);
          await audit(q, v.audit, now);
        });
      } catch (err) {
        if (isUniqueViolation(err) && (await byName(v.name)))
          throw new HubStoreError(`vessel ${v.name} already exists`, 'exists', 409);
        throw err;
      }
      return vesselFromRow((await byId(id))!);
    },
    async touch(id, address, now) {
      await db.run('UPDATE vessels SET last_contact = ?, last_address = ? WHERE id = ?', [now, address, id]);
    },
    async report(id, r, at) {
      const t = at ?? null;
      // A report timed before the stored one changes nothing (status_at NULL: none stored, or untimed ones);
      // one UPDATE, so two hubs storing reports of one vessel cannot interleave a check and a write.
      const changed = await db.run(
        `UPDATE vessels SET current_release = ?, agent_version = ?, status = ?,
           status_at = COALESCE(?::bigint, status_at), status_received_at = ?::bigint, status_flags = ?
         WHERE id = ? AND (?::bigint IS NULL OR status_at IS NULL OR status_at <= ?::bigint)`,
        [
          r.currentRelease,
          r.agentVersion,
          JSON.stringify(r.status ?? null),
          t,
          r.receivedAt ?? null,
          r.flags ?? '',
          id,
          t,
          t,
        ],
      );
      return changed === 1;
    },
    async revoke(id, now, entry) {
      return db.tx(async (q) => {
        const tokensCancelled = await q.run(
          'UPDATE enrolment_tokens SET expires_at = 0 WHERE vessel_id = ? AND used_at IS NULL AND expires_at > ?',
          [id, now],
        );
        const revoked =
          (await q.run('UPDATE vessels SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])) === 1;
        await audit(q, entry, now);
        return { revoked, tokensCancelled };
      });
    },
    async counts(activeSince) {
      return (await db.get<{ total: number; active: number }>(
        `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN last_contact >= ? THEN 1 ELSE 0 END), 0) AS active
         FROM vessels WHERE revoked_at IS NULL`,
        [activeSince],
      ))!;
    },
  };
}
