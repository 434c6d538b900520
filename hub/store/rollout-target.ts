import { HubStoreError } from './hub-store.js';

/** Whom a rollout is for: every vessel, a group, or one vessel by name. */
export type RolloutTarget = { kind: 'all' } | { kind: 'group'; group: string } | { kind: 'vessel'; name: string };

/** `all`, `group:NAME` or `vessel:NAME`; anything else is 'bad_target'. Every engine parses targets the same way. */
export function parseTarget(text: string): RolloutTarget {
  if (text === 'all') return { kind: 'all' };
  const m = /^(group|vessel):([a-z0-9][a-z0-9-]{0,62})$/.exec(text);
  if (!m)
    throw new HubStoreError(
      `target must be all, group:NAME or vessel:NAME, got ${JSON.stringify(text)}`,
      'bad_target',
      400,
    );
  return m[1] === 'group' ? { kind: 'group', group: m[2]! } : { kind: 'vessel', name: m[2]! };
}
