import { onTestFinished } from 'vitest';

const deferred: (() => unknown)[] = [];
let fileScope = false;

/**
 * Clean up when the current test ends, or, for fixtures shared by a whole file (after useFileScope()),
 * when runDeferredCleanup() is called from afterAll.
 */
export function cleanup(fn: () => unknown): void {
  if (fileScope) {
    deferred.push(fn);
    return;
  }
  try {
    onTestFinished(async () => {
      await fn();
    });
  } catch {
    deferred.push(fn);
  }
}

/** Everything made from now on in this file lives until runDeferredCleanup(). */
export function useFileScope(): void {
  fileScope = true;
}

export async function runDeferredCleanup(): Promise<void> {
  while (deferred.length) await deferred.pop()!();
  fileScope = false;
}
