import { ConflictError, JournalError, ensureError } from '../../errors.js';
import { factBodyText, type Fact, type FactBody, type Grant, type SnapshotRecord } from '../../protocol/index.js';
import type { ActorIndexRow, ChainHead, LoadedChain, PendingRecord, StoredOutcome, StorePort, Turn } from '../../host/ports.js';
import type { ActorPage, ActorPageQuery } from '../../host/actor-page.js';
import type { Checkpoint, CommitBatch, SqliteStore, StoredFactRow } from './sqlite-store.js';
import { JournalBrokenError } from '../../errors.js';
import { checkpointHash, verifyStore, type VerifyOptions, type VerifyResult } from './verify-store.js';

/**
 * The embedded store port: turns go into SQLite in groups.
 *
 * - `commit(turn)` checks the fence (the turn continues the chain's head, counting turns
 *   still queued), queues the turn and resolves once the group commit holding it is durable
 *   (`synchronous=FULL`). Queued turns are flushed together on the next turn of the event
 *   loop (or at once when many are queued and the writer is idle), in call order, in ONE
 *   store transaction, while the writer thread fsyncs the previous group.
 * - If a flush fails, every turn in it and every turn queued after it is rejected (they were
 *   chained onto facts that never landed), the in-memory heads are forgotten, and
 *   `onFlushFailed` names the chains so the host can drop their in-memory state.
 * - Every flush stores a checkpoint: the heads of the chains it touched, chained to the
 *   previous checkpoint (`hash = sha256(prev + JSON.stringify(heads))`) and signed by the
 *   authority. The newest checkpoint's signature thus attests every chain up to the heads
 *   any checkpoint names.
 */

/** Queue length at which a batch goes to the writer at once if it is idle. */
const EAGER_FLUSH = 16;

export interface SqliteJournalOptions {
  /** Signs a checkpoint hash; called once per flush. */
  attest?: (hash: string) => { keyId: string; sig: string };
  onFlushFailed?: (chains: Set<string>, err: Error) => void;
  now?: () => number;
}

interface Queued {
  turn: Turn;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class SqliteJournal implements StorePort {
  readonly kind = 'sqlite' as const;
  readonly store: SqliteStore;
  readonly #attest: SqliteJournalOptions['attest'];
  readonly #onFlushFailed: (chains: Set<string>, err: Error) => void;
  readonly #now: () => number;
  /** Heads including queued turns: what the next turn of a chain must continue. */
  #heads = new Map<string, ChainHead>();
  #queue: Queued[] = [];
  #scheduled = false;
  #inFlight = false;
  #pendingChains = new Map<string, number>();
  #lastCheckpointHash: string;
  #listeners = new Set<(facts: readonly Fact[]) => void>();
  #drainWaiters: Array<() => void> = [];
  maxBatch = 0;
  flushes = 0;

  constructor(store: SqliteStore, opts: SqliteJournalOptions = {}) {
    this.store = store;
    this.#attest = opts.attest;
    this.#onFlushFailed = opts.onFlushFailed ?? (() => {});
    this.#now = opts.now ?? Date.now;
    this.#lastCheckpointHash = store.lastCheckpoint()?.hash ?? '';
  }

  head(chain: string): Promise<ChainHead> {
    return Promise.resolve({ ...this.#headOf(chain) });
  }

  #headOf(chain: string): ChainHead {
    let h = this.#heads.get(chain);
    if (!h) {
      h = this.store.chainHead(chain);
      this.#heads.set(chain, h);
    }
    return h;
  }

  commit(turn: Turn): Promise<void> {
    const head = this.#headOf(turn.chain);
    if (head.seq !== turn.after.seq || head.hash !== turn.after.hash) {
      return Promise.reject(
        new ConflictError(`chain ${turn.chain} is at seq ${head.seq}, the turn continues seq ${turn.after.seq}: another writer appended`),
      );
    }
    const last = turn.facts.at(-1);
    if (last) this.#heads.set(turn.chain, { seq: last.seq, hash: last.hash });
    this.#pendingChains.set(turn.chain, (this.#pendingChains.get(turn.chain) ?? 0) + 1);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ turn, resolve, reject });
      this.#schedule();
    });
  }

  /** True while a chain has turns that are not yet durable. */
  hasPending(chain: string): boolean {
    return this.#pendingChains.has(chain);
  }

  load(chain: string): Promise<LoadedChain> {
    try {
      return Promise.resolve(this.#load(chain));
    } catch (e) {
      return Promise.reject(ensureError(e));
    }
  }

  #load(chain: string): LoadedChain {
    const snapshot = this.store.snapshot(chain);
    const rows = this.store.chainRows(chain, (snapshot?.seq ?? 0) + 1);
    const facts = rows.map(rowToFact);
    let seq = snapshot?.seq ?? 0;
    let hash = seq > 0 ? (this.store.factRow(chain, seq)?.hash ?? '') : '';
    if (seq > 0 && hash === '')
      throw new JournalBrokenError(chain, seq, 'gap', `the snapshot is at seq ${seq}, which is not in the journal`);
    for (const f of facts) {
      if (f.seq !== seq + 1) throw new JournalBrokenError(chain, seq + 1, 'gap', `fact ${seq + 1} is missing`);
      if (f.prev !== hash) throw new JournalBrokenError(chain, f.seq, 'hash', 'prev does not match the previous hash');
      seq = f.seq;
      hash = f.hash;
    }
    return { ...(snapshot ? { snapshot } : {}), facts, head: { seq, hash } };
  }

  latestSnapshot(actor: string): Promise<SnapshotRecord | undefined> {
    return Promise.resolve(this.store.snapshot(actor));
  }

  outcome(intentId: string): Promise<StoredOutcome | undefined> {
    const o = this.store.outcome(intentId);
    return Promise.resolve(o ? { intentId, ...o } : undefined);
  }

  pending(intentId?: string): Promise<PendingRecord[]> {
    return Promise.resolve(this.store.pending(intentId));
  }

  actors(): Promise<ActorIndexRow[]> {
    return Promise.resolve(this.store.actorIndex());
  }

  wakeups(before: number, limit: number): Promise<Array<{ actor: string; dueAt: number }>> {
    return Promise.resolve(this.store.wakeups(before, limit));
  }

  timers(limit: number): Promise<SnapshotRecord[]> {
    return Promise.resolve(this.store.snapshotsToWake(limit));
  }

  actorsPage(q: ActorPageQuery): Promise<ActorPage<ActorIndexRow>> {
    return Promise.resolve(this.store.actorPage(q));
  }

  grants(): Promise<Grant[]> {
    return Promise.resolve(this.store.grants());
  }

  chainFacts(chain: string, fromSeq: number, limit: number): Promise<Fact[]> {
    return Promise.resolve(this.store.chainRows(chain, fromSeq, limit).map(rowToFact));
  }

  /** Listens to facts after they are durable, one call per group commit. */
  onFacts(listener: (facts: readonly Fact[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #schedule(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    // Enough queued and the writer idle: hand it over now rather than at the end of this
    // turn of the event loop, so its fsync overlaps the work on the rest.
    if (this.#queue.length >= EAGER_FLUSH) {
      this.#flush();
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #settleChains(queue: Queued[]): void {
    for (const q of queue) {
      const n = (this.#pendingChains.get(q.turn.chain) ?? 1) - 1;
      if (n <= 0) {
        // Nothing of the chain is queued or in flight: its head is the one on disk, read
        // again (one indexed row) by its next turn. Kept, the map would hold every chain
        // this process ever wrote to, passivated actors included.
        this.#pendingChains.delete(q.turn.chain);
        this.#heads.delete(q.turn.chain);
      } else this.#pendingChains.set(q.turn.chain, n);
    }
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#inFlight) return;
    const queue = this.#queue;
    this.#queue = [];
    if (queue.length === 0) {
      this.#settleDrain();
      return;
    }
    const merged: CommitBatch = { facts: [], snapshots: [], outcomes: [], grants: [], pendingPut: [], pendingDelete: [] };
    const snapshotByActor = new Map<string, SnapshotRecord>();
    const grantById = new Map<string, Grant>();
    const heads = new Map<string, [string, number, string]>();
    for (const { turn } of queue) {
      turn.facts.forEach((fact, i) => merged.facts.push({ fact, body: turn.bodies?.[i] ?? factBodyText(fact), chain: turn.chain }));
      const last = turn.facts.at(-1);
      if (last) heads.set(turn.chain, [turn.chain, last.seq, last.hash]);
      // Only the newest snapshot of an actor in this group needs writing.
      if (turn.snapshot) snapshotByActor.set(turn.snapshot.actor, turn.snapshot);
      if (turn.outcome) merged.outcomes.push(turn.outcome);
      for (const g of turn.grants ?? []) grantById.set(g.id, g);
      if (turn.pendingPut) merged.pendingPut.push(turn.pendingPut);
      if (turn.pendingDelete) merged.pendingDelete.push(turn.pendingDelete);
    }
    merged.snapshots = [...snapshotByActor.values()];
    merged.grants = [...grantById.values()];
    let nextCheckpointHash: string | undefined;
    if (heads.size > 0 && this.#attest) {
      const list = [...heads.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const prev = this.#lastCheckpointHash;
      const hash = checkpointHash(prev, list);
      const a = this.#attest(hash);
      nextCheckpointHash = hash;
      merged.checkpoint = { pos: 0, heads: list, prev, hash, keyId: a.keyId, sig: a.sig, at: new Date(this.#now()).toISOString() };
    }
    this.#inFlight = true;
    this.store.commit(merged).then(
      () => this.#committed(queue, merged, nextCheckpointHash),
      (e: unknown) => this.#failed(queue, e),
    );
  }

  #failed(queue: Queued[], e: unknown): void {
    this.#inFlight = false;
    const err =
      e instanceof ConflictError ? e : new JournalError('commit failed; nothing in this group was acknowledged', { cause: ensureError(e) });
    // Everything queued after the failed group chained onto facts that never landed: fail it too.
    const all = [...queue, ...this.#queue];
    this.#queue = [];
    this.#heads.clear();
    const chains = new Set(all.map((q) => q.turn.chain));
    this.#settleChains(all);
    this.#onFlushFailed(chains, err);
    for (const q of all) q.reject(err);
    this.#settleDrain();
  }

  #committed(queue: Queued[], merged: CommitBatch, checkpointHash: string | undefined): void {
    this.#inFlight = false;
    if (checkpointHash !== undefined) this.#lastCheckpointHash = checkpointHash;
    this.#settleChains(queue);
    this.flushes++;
    if (queue.length > this.maxBatch) this.maxBatch = queue.length;
    for (const q of queue) q.resolve();
    if (this.#listeners.size > 0 && merged.facts.length > 0) {
      const facts = merged.facts.map((f) => f.fact);
      for (const l of this.#listeners) {
        try {
          l(facts);
        } catch {
          // A listener's failure is its own; the journal has already committed.
        }
      }
    }
    this.#schedule();
    this.#settleDrain();
  }

  #settleDrain(): void {
    if (this.#queue.length === 0 && !this.#inFlight && !this.#scheduled) {
      const ws = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Resolves when every turn committed so far is durable (or failed). */
  drain(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled && !this.#inFlight) return Promise.resolve();
    return new Promise<void>((r) => this.#drainWaiters.push(r));
  }

  // ------------------------------------------------------------------------------------------
  // reads across chains (CLI, inspector, verify)

  /** Newest first. */
  tail(opts: { limit?: number; chain?: string; beforePos?: number } = {}): Fact[] {
    return this.store.tailRows(opts.limit ?? 50, opts.beforePos, opts.chain).map(rowToFact);
  }

  /** In write order, from position `fromPos`. */
  read(fromPos = 1, limit = 1000): Fact[] {
    return this.store.factRows(fromPos, limit).map(rowToFact);
  }

  factsOfIntent(intentId: string): Fact[] {
    return this.store.intentFactRows(intentId).map(rowToFact);
  }

  fact(chain: string, seq: number): Fact | undefined {
    const row = this.store.factRow(chain, seq);
    return row ? rowToFact(row) : undefined;
  }

  get lastPos(): number {
    return this.store.lastPos();
  }

  /** Walks every chain and checks the checkpoints, in this thread. See {@link verifyStore}. */
  verify(checkSignature?: (cp: Checkpoint) => boolean, opts?: VerifyOptions): VerifyResult {
    return verifyStore(this.store, checkSignature, opts);
  }
}

export function rowToFact(row: StoredFactRow): Fact {
  const body = JSON.parse(row.body) as FactBody;
  return { ...body, prev: row.prev, hash: row.hash };
}
