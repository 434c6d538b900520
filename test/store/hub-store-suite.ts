import { describe } from 'vitest';
import type { HubStore } from '../../hub/store/hub-store.js';
import { cleanup } from '../helpers/cleanup.js';
import type { OpenStore } from './fixtures.js';
import { backupTests } from './suite-backups.js';
import { catalogueTests } from './suite-catalogue.js';
import { chunkTests } from './suite-chunks.js';
import { rolloutTests } from './suite-rollouts.js';
import { telemetryTests } from './suite-telemetry.js';
import { vesselTests } from './suite-vessels.js';
import { hubsecTests } from './suite-hubsec.js';
import { pageTests } from './suite-page.js';

/** What a backend gives the suite: a fresh, empty store, and more handles on the same data. */
export interface HubStoreHarness {
  store: HubStore;
  /** Another handle on the same data, as a second hub process has (for PostgreSQL: another pool). */
  another(): Promise<HubStore>;
}
export type HubStoreFactory = () => Promise<HubStoreHarness>;

/**
 * The behaviour every HubStore backend must have, as one suite: SQLite runs it today
 * (test/unit/hub-store-sqlite.test.ts); PostgreSQL with an S3 chunk store runs the same file next.
 * The factory makes an empty store per test and removes what it made when the test ends.
 */
export function describeHubStore(name: string, factory: HubStoreFactory): void {
  const open: OpenStore = async () => {
    const h = await factory();
    cleanup(() => h.store.close());
    return {
      store: h.store,
      async another() {
        const s = await h.another();
        cleanup(() => s.close());
        return s;
      },
    };
  };
  describe(`hub store (${name})`, () => {
    vesselTests(open);
    catalogueTests(open);
    telemetryTests(open);
    chunkTests(open);
    backupTests(open);
    rolloutTests(open);
    hubsecTests(open);
    pageTests(open);
  });
}
