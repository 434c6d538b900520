import { randomBytes } from 'node:crypto';

/**
 * This test process's run: every app, container, image tag, network and folder a test makes carries it,
 * so a test finds and removes only what it made, never a developer's demo or another run on the engine.
 */
export const RUN_ID = randomBytes(3).toString('hex');

/** BASE plus the run id: an app, image repository or network name no other run uses. */
export function unique(base: string): string {
  return `${base}${RUN_ID}`;
}
