import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../../shared/fs-atomic.js';
import { parseStrictJson } from '../../../shared/trust/strict-json.js';

/**
 * A pack under way, on disk as <id>.json beside its bytes in <id>.part: what a resumed download needs
 * (the pack's id, length and validator, and the chunks it holds) survives a reboot.
 */
export const packStateSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{32}$/),
  length: z.number().int().min(0),
  etag: z.string(),
  /** app@version */
  release: z.string(),
  digests: z.array(z.string()),
  /** Asked with the content's solid groups ahead: after a restart it is resumed with the content. */
  ahead: z.literal(true).optional(),
});
export type PackState = z.infer<typeof packStateSchema>;

/** The pack as the hub fixed it. */
export type PackHandle = Pick<PackState, 'id' | 'length' | 'etag'>;

export const packPartPath = (dir: string, id: string) => join(dir, `${id}.part`);

/** Written before the pack's first byte is, so a cut resumes with range requests. */
export function savePackState(
  dir: string,
  release: string,
  p: PackHandle,
  digests: string[],
  ahead = false,
): PackState {
  const state: PackState = { ...p, release, digests, ...(ahead ? { ahead: true as const } : {}) };
  writeFileAtomic(join(dir, `${p.id}.json`), JSON.stringify(state), 0o600);
  return state;
}

/** Every pack under way in dir; a record that does not fit the schema is left out. */
export function packsUnderWay(dir: string): PackState[] {
  const out: PackState[] = [];
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    if (!f.endsWith('.json')) continue;
    const r = packStateSchema.safeParse(parseStrictJson(readFileSync(join(dir, f))));
    if (r.success) out.push(r.data);
  }
  return out;
}

export function removePack(dir: string, id: string): void {
  rmSync(packPartPath(dir, id), { force: true });
  rmSync(join(dir, `${id}.json`), { force: true });
}
