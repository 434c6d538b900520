import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real processes and a real Docker engine; give them room on a 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The run's CA for the journey tests' HTTPS hubs: made before the workers start, so they inherit it.
    globalSetup: ['./test/global-setup.ts'],
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
