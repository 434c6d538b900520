import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../../shared/fs-atomic.js';
import { parseStrictJson } from '../../../shared/trust/strict-json.js';
import type { ReleaseManifest } from '../../../shared/protocol/manifest.js';
import { indexSlots } from '../../../shared/content/release-chunks.js';

/**
 * Which layer index the vessel holds for each layer slot of an app (image name without its tag, layer
 * position), written when a release is on board: the next release's changed indexes are asked for as
 * deltas against these. A lost or stale record costs only the delta (the whole index is sent instead).
 */
const recordSchema = z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/));
const FILE = 'layer-indexes.json';
// Slots kept: a few apps of a few images of up to 256 layers.
const MAX_SLOTS = 4096;

function read(dir: string): Record<string, string> {
  const p = join(dir, FILE);
  if (!existsSync(p)) return {};
  const r = recordSchema.safeParse(parseStrictJson(readFileSync(p)));
  return r.success ? r.data : {};
}

/** [wanted index, held index of the same slot] for the indexes of `m` the vessel lacks. */
export function indexBases(dir: string, m: ReleaseManifest, lacking: Set<string>, has: (d: string) => boolean) {
  const held = read(dir);
  const out = new Map<string, string>();
  for (const [slot, d] of indexSlots(m)) {
    const base = held[slot];
    if (lacking.has(d) && base && base !== d && !out.has(d) && has(base)) out.set(d, base);
  }
  return [...out];
}

/** Record the release's indexes as the ones held for their slots. */
export function recordIndexes(dir: string, m: ReleaseManifest): void {
  const next = { ...read(dir), ...Object.fromEntries(indexSlots(m)) };
  const keys = Object.keys(next);
  for (const k of keys.slice(0, Math.max(0, keys.length - MAX_SLOTS))) delete next[k];
  writeFileAtomic(join(dir, FILE), JSON.stringify(next), 0o600);
}
