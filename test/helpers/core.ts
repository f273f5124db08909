import { exampleActors } from '../../actors/index.js';
import { AuthorityKey, GrantBook, type LocalTrust } from '../../src/authority/index.js';
import { ActorRegistry, Host } from '../../src/host/index.js';
import { runtimeChain, type StorePort } from '../../src/host/ports.js';
import { SqliteJournalReader } from '../../src/journal/reader.js';
import { LocalOwnership } from '../../src/ownership/index.js';
import { SqliteJournal, SqliteStore } from '../../src/store/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { sequentialIds, type IdGen } from '../../src/util/ids.js';
import { silentLogger } from '../../src/util/logger.js';
import { tempDir } from './runtime.js';

/**
 * The embedded runtime's pieces wired by hand, as src/runtime.ts wires them (SQLite store,
 * group-commit journal with signed checkpoints, data-dir ownership, grant book recording on
 * the runtime chain, host), without the transport, intake and authority service: for tests
 * that hand the host decisions directly or look at the store underneath.
 */
export interface Core {
  dir: string;
  clock: ManualClock;
  ids: IdGen;
  registry: ActorRegistry;
  store: SqliteStore;
  journal: SqliteJournal;
  reader: SqliteJournalReader;
  key: AuthorityKey;
  grants: GrantBook;
  host: Host;
  /** `_runtime/_`, as an embedded runtime names it. */
  runtimeChain: string;
  close(): Promise<void>;
}

/**
 * @param opts.wrapStore wraps the store port the host writes through (fault injection: hold or
 *   fail a commit); `journal` stays the real one.
 */
export function embeddedCore(opts: { trust?: LocalTrust; ids?: IdGen; wrapStore?: (s: StorePort) => StorePort } = {}): Core {
  const t = tempDir('ice-core-');
  const clock = new ManualClock();
  const ids = opts.ids ?? sequentialIds();
  const registry = new ActorRegistry(exampleActors);
  const store = new SqliteStore(t.dir);
  const key = AuthorityKey.generate();
  const chain = runtimeChain('_');
  let host!: Host;
  const journal = new SqliteJournal(store, {
    now: () => clock.now(),
    attest: (hash) => ({ keyId: key.keyId, sig: key.signCheckpoint(hash) }),
    onFlushFailed: (chains) => host.evict(chains),
  });
  const grants = new GrantBook(store.grants(), () => Promise.reject(new Error('grant recorder not ready')), clock, ids);
  host = new Host({
    node: 'test',
    registry,
    store: opts.wrapStore ? opts.wrapStore(journal) : journal,
    ownership: new LocalOwnership('test'),
    grants,
    runtimeChain: chain,
    clock,
    logger: silentLogger(),
    authorityKeys: new Map([[key.keyId, key]]),
    ...(opts.trust ? { trust: opts.trust } : {}),
  });
  grants.setRecorder(async (drafts, grantRecords) => {
    await host.record(drafts, { grants: grantRecords });
  });
  return {
    dir: t.dir,
    clock,
    ids,
    registry,
    store,
    journal,
    reader: new SqliteJournalReader(journal, key),
    key,
    grants,
    host,
    runtimeChain: chain,
    async close() {
      await journal.drain();
      host.stopAll();
      await store.close();
      t.cleanup();
    },
  };
}
