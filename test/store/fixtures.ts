import { createHash, randomBytes } from 'node:crypto';
import { brotliCompressSync } from 'node:zlib';
import { expect } from 'vitest';
import type { HubStore, Vessel } from '../../hub/store/hub-store.js';

/** Opens a fresh store for one test; its handles close when the test ends (the suite's own type, kept here
 * beside the other helpers every suite file imports, so the suite and its parts do not import each other). */
export type OpenStore = () => Promise<{ store: HubStore; another(): Promise<HubStore> }>;

/** A fixed clock start for the suite: every store gets explicit times. */
export const T0 = 1_700_000_000_000;
export const DAY = 24 * 3600 * 1000;

export const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A token as the hub stores it: only the hash of a fresh secret. */
export function newToken(expiresAt = T0 + DAY, kind: 'online' | 'offline' = 'online') {
  const secret = randomBytes(32).toString('base64url');
  return { secret, stored: { tokenHash: sha256(secret), kind, expiresAt } };
}

export const publicKey = () => randomBytes(32).toString('base64');

/** A chunk as the publisher uploads it: brotli bytes named by the sha256 of the raw content. */
export function makeChunk(raw: Buffer = randomBytes(200 + Math.floor(Math.random() * 800))) {
  return { digest: sha256(raw), raw, compressed: brotliCompressSync(raw) };
}

/** Rejects with a store error of this code. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code });
}

export async function addVessel(store: HubStore, name: string, groups: string[] = [], now = T0): Promise<Vessel> {
  return store.vessels.create({ name, groups }, now);
}

/** Outcomes of racing promises: how many won, and the codes the others failed with. */
export async function race<T>(attempts: Promise<T>[]): Promise<{ won: T[]; codes: string[] }> {
  const settled = await Promise.allSettled(attempts);
  return {
    won: settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])),
    codes: settled.flatMap((s) => (s.status === 'rejected' ? [String((s.reason as { code?: unknown }).code)] : [])),
  };
}

/** Byte equality that stays quick on large buffers (a deep equal walks every element) and says how they differ. */
export function expectSameBytes(actual: Buffer, expected: Buffer): void {
  expect({ length: actual.byteLength, sha256: sha256(actual) }).toEqual({
    length: expected.byteLength,
    sha256: sha256(expected),
  });
}
