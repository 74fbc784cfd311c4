/** The port's contract (contract.ts) on the SQLite store. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Store } from '../../src/store/port.js';
import { openStore } from '../helpers/db.js';
import { makeTempDir } from '../helpers/tmp.js';
import { storeContract } from './contract.js';

storeContract('sqlite', {
  async open(t, clock) {
    const dir = makeTempDir('agent-update-contract-');
    const store = openStore(join(dir, 'p.db'), clock);
    t.after(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return store;
  },
  async reopen(t, store: Store) {
    const again = openStore(store.location);
    t.after(() => again.close());
    return again;
  },
});
