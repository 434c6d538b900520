import { HubStoreError, type PackRecords } from '../hub-store.js';
import type { PgDb } from './pg.js';

const DIGEST_BYTES = 32;
const DIGEST_RE = /^[0-9a-f]{64}$/;

export function pgPacks(db: PgDb): PackRecords {
  return {
    async put(p, now) {
      const bad = p.digests.find((d) => !DIGEST_RE.test(d));
      if (bad !== undefined)
        throw new HubStoreError(
          `pack ${p.id}: not a chunk digest: ${JSON.stringify(bad).slice(0, 80)}`,
          'bad_digest',
          400,
        );
      // Digests as 32 raw bytes each, as SQLite stores them.
      const digests = Buffer.concat(p.digests.map((d) => Buffer.from(d, 'hex')));
      const n = await db.run(
        `INSERT INTO packs (id, vessel_id, release_id, digests, length, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
        [p.id, p.vesselId, p.releaseId, digests, p.length, now],
      );
      return { created: n === 1 };
    },
    async get(id, vesselId) {
      const r = await db.get<{
        id: string;
        vessel_id: string;
        release_id: number;
        digests: Buffer;
        length: number;
        created_at: number;
      }>('SELECT * FROM packs WHERE id = ? AND vessel_id = ?', [id, vesselId]);
      if (!r) return undefined;
      const digests: string[] = [];
      for (let i = 0; i < r.digests.byteLength; i += DIGEST_BYTES)
        digests.push(r.digests.subarray(i, i + DIGEST_BYTES).toString('hex'));
      return {
        id: r.id,
        vesselId: r.vessel_id,
        releaseId: r.release_id,
        digests,
        length: r.length,
        createdAt: r.created_at,
      };
    },
  };
}
