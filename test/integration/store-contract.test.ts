import { SqliteJournal, SqliteStore } from '../../src/store/index.js';
import type { Fact } from '../../src/protocol/index.js';
import { factBodyText } from '../../src/protocol/index.js';
import { storeContract } from '../helpers/store-contract.js';
import { tempDir } from '../helpers/runtime.js';

/** The store port contract on SQLite (the JetStream run is in store-jetstream.test.ts). */
storeContract('SQLite', () => {
  const t = tempDir();
  const stores: SqliteStore[] = [];
  const open = () => {
    const st = new SqliteStore(t.dir);
    stores.push(st);
    return Object.assign(new SqliteJournal(st), { close: () => st.close() });
  };
  const store = open();
  const raw = async (chain: string, facts: Fact[]): Promise<void> => {
    await Promise.resolve();
    for (const f of facts) {
      store.store.unsafeExec(
        'INSERT INTO facts(chain, seq, type, actor, intent_id, at, body, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        chain,
        f.seq,
        f.type,
        f.actor ?? null,
        f.intentId ?? null,
        f.at,
        factBodyText(f),
        f.prev,
        f.hash,
      );
    }
  };
  return Promise.resolve({
    store,
    // a second writer on the same file (what the data-dir lock keeps out): the unique
    // (chain, seq) index refuses its stale turn
    second: () => Promise.resolve(open()),
    injectFork: raw,
    injectGap: raw,
    forkUnstorable: true,
    cleanup: async () => {
      for (const s of stores) await s.close();
      t.cleanup();
    },
  });
});
