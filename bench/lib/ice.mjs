// Runtime-side helpers: open a runtime on a temp dir, build a store with N stored actors,
// and make intents that are always legal.
//
// Workload: `deployment` actors in `draft` taking CONFIGURE { version, replicas }. CONFIGURE
// is legal in draft forever, and every intent carries different params, so every snapshot
// the runtime writes differs from the last (SQLite skips identical page writes, which would
// flatter the figures).
import { join } from 'node:path';
import { importDist, benchLogger, progress } from './common.mjs';

export const PROPOSER = 'agent:bench';
export const KIND = 'deployment';

export const address = (i) => `${KIND}/d${i}`;

const tag = `${process.pid.toString(36)}${Date.now().toString(36)}`;
/** Intent ids unique across runs and processes. */
export const intentId = (n) => `b-${tag}-${n}`;

/** A CONFIGURE intent to `target` whose params differ for every `n`. */
export function configureIntent(n, target) {
  return {
    id: intentId(n),
    proposer: PROPOSER,
    target,
    action: 'CONFIGURE',
    params: { version: `1.${(n >>> 10) % 1000}.${n % 1024}`, replicas: (n % 100) + 1 },
  };
}

export async function openRuntime(dataDir, extra = {}) {
  const { createRuntime } = await importDist('src/index.js');
  const logger = await benchLogger();
  const rt = await createRuntime({ dataDir, logger, node: 'bench', ...extra });
  // Work around: SqliteStore.close() waits for a message from its writer thread, which is
  // unref'd while idle, so when nothing else keeps the event loop alive the process exits
  // (code 13, unsettled top-level await) in the middle of rt.stop(). Hold a timer meanwhile.
  const stop = rt.stop.bind(rt);
  rt.stop = () => keepAlive(stop());
  return rt;
}

/** Keeps the event loop alive until `p` settles. */
export async function keepAlive(p) {
  const t = setInterval(() => {}, 1000);
  try {
    return await p;
  } finally {
    clearInterval(t);
  }
}

/**
 * Opens the store of `dataDir` with the runtime's own store port (SqliteStore + SqliteJournal:
 * fence, group commit), attesting each group commit's checkpoint with the data dir's
 * authority key (as the runtime does), for writing fixtures. `commit(turn)` takes one turn
 * of one chain (see src/host/ports.ts).
 */
export async function openJournal(dataDir) {
  const { SqliteStore, SqliteJournal } = await importDist('src/store/index.js');
  const { AuthorityKey } = await importDist('src/authority/index.js');
  const key = AuthorityKey.loadOrCreate(join(dataDir, 'authority.key'));
  const store = new SqliteStore(dataDir);
  const journal = new SqliteJournal(store, { attest: (hash) => ({ keyId: key.keyId, sig: key.signCheckpoint(hash) }) });
  return {
    journal,
    store,
    close: async () => {
      await keepAlive(journal.drain());
      await keepAlive(Promise.resolve(store.close()));
    },
  };
}

export async function grantAll(rt) {
  return rt.grants.issue({ subject: PROPOSER, scope: `${KIND}/*:*`, by: 'bench' });
}

/**
 * Spawns `n` actors through the public API (runtime.spawn), `concurrency` at a time. Each
 * spawn is a turn of its own (and an actor kept in memory), so this is for small n; see
 * buildStoredActors for large stores.
 */
export async function spawnActors(rt, n, { from = 0, concurrency = 64 } = {}) {
  let next = from;
  const end = from + n;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < end) {
        const i = next++;
        await rt.spawn(address(i), { service: `svc-${i}` });
      }
    }),
  );
}

/**
 * Builds a data dir holding `n` stored (not running) deployment actors and one grant for
 * the bench proposer, as fast as the store allows.
 *
 * The grant goes through the runtime (grants.issue). The actors are written with the
 * runtime's own store port (SqliteJournal + SqliteStore) — the same turn Host.spawn commits:
 * one `actor.started` fact opening the actor's chain and its snapshot record, with snapshots
 * made by the real machine — `batch` turns handed over at a time (they group-commit).
 * (runtime.spawn keeps every actor it spawns in memory: see spawnActors.) Returns the time it took.
 */
export async function buildStoredActors(dataDir, n, { batch = 5000 } = {}) {
  const t0 = performance.now();
  const rt = await openRuntime(dataDir);
  await grantAll(rt);
  await rt.stop();

  const { FactType, Origin, chainFact } = await importDist('src/index.js');
  const { deploymentMachine } = await importDist('machines/index.js');
  const { createActor } = await import('xstate');

  const { journal, close } = await openJournal(dataDir);
  try {
    for (let start = 0; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      const commits = [];
      for (let i = start; i < end; i++) {
        const addr = address(i);
        const input = { service: `svc-${i}` };
        const actor = createActor(deploymentMachine, { input });
        actor.start();
        const persisted = actor.getPersistedSnapshot();
        actor.stop();
        const at = new Date().toISOString();
        const after = { seq: 0, hash: '' };
        const { fact, body } = chainFact(
          { ...after },
          {
            type: FactType.actorStarted,
            origin: Origin.operator,
            actor: addr,
            data: { kind: KIND, input, state: 'draft', node: 'bench-fixture' },
          },
          at,
        );
        commits.push(
          journal.commit({
            chain: addr,
            after,
            facts: [fact],
            bodies: [body],
            snapshot: {
              v: 1,
              actor: addr,
              kind: KIND,
              seq: fact.seq,
              status: 'active',
              state: 'draft',
              snapshot: persisted,
              updatedAt: at,
            },
          }),
        );
      }
      await keepAlive(Promise.all(commits));
      if (n >= 20_000 && end % (n >= 500_000 ? 100_000 : 20_000) === 0) progress(`fixture: ${end}/${n} actors stored`);
    }
  } finally {
    await close();
  }
  return performance.now() - t0;
}

/** Asserts an outcome is `executed`; throws with the outcome otherwise. */
export function mustExecute(out) {
  if (out?.status !== 'executed') throw new Error(`intent not executed: ${JSON.stringify(out)}`);
  return out;
}
