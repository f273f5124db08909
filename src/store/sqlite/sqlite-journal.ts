import { ConflictError, JournalError, ensureError } from '../../errors.js';
import { factBodyText, sha256Hex, type Fact, type FactBody, type Grant, type SnapshotRecord } from '../../protocol/index.js';
import type { ActorIndexRow, ChainHead, LoadedChain, PendingRecord, StoredOutcome, StorePort, Turn } from '../../host/ports.js';
import type { Checkpoint, CommitBatch, SqliteStore, StoredFactRow } from './sqlite-store.js';
import { JournalBrokenError } from '../../errors.js';

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

export interface VerifyResult {
  ok: boolean;
  /** Facts checked. */
  count: number;
  /** Chains seen. */
  chains: number;
  /** Position of the newest fact checked. */
  lastPos: number;
  /** Checkpoints checked (when a key was given). */
  checkpoints?: number;
  /** Position of the newest checkpoint whose signature verified: every fact up to it is attested. */
  attestedPos?: number;
  /**
   * Turns that claimed a position already taken (cluster: two writers with one expectation,
   * the later one confirmed it lost and acknowledged nothing). Not part of any chain.
   */
  orphans?: Array<{ chain: string; seq: number; pos: number }>;
  /** Where it breaks: the chain and seq, and the row position. */
  brokenChain?: string;
  brokenAt?: number;
  brokenPos?: number;
  reason?: string;
}

/** What a node's check of its journal before serving found (both modes). */
export interface StartCheck {
  /** Positions after this one were checked (0: all of them). */
  fromPos: number;
  result: VerifyResult;
  ms: number;
}

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
      if (n <= 0) this.#pendingChains.delete(q.turn.chain);
      else this.#pendingChains.set(q.turn.chain, n);
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

  /** Walks every chain and checks the checkpoints. See {@link verifyRows}. */
  verify(checkSignature?: (cp: Checkpoint) => boolean): VerifyResult {
    return verifyStore(this.store, checkSignature);
  }
}

/** Verifies a whole store: every chain, then the checkpoints (see {@link verifyRows}). */
export function verifyStore(store: SqliteStore, checkSignature?: (cp: Checkpoint) => boolean): VerifyResult {
  const checkpoints = checkSignature ? store.checkpoints() : [];
  const r = verifyRows(store.iterateFactRows(), checkSignature ? { checkpoints, checkSignature } : {});
  if (!r.ok || !checkSignature) return r;
  const m = checkpointMismatch(store, checkpoints);
  if (!m) return r;
  return {
    ...r,
    ok: false,
    brokenChain: m.chain,
    brokenAt: m.seq,
    reason: 'a signed checkpoint names another hash here (history was rewritten)',
  };
}

export function checkpointHash(prev: string, heads: Checkpoint['heads']): string {
  return sha256Hex(prev + JSON.stringify(heads));
}

/**
 * Checks every chain in rows given in write order: seq continuity per chain, each stored
 * hash against sha256(prev + body), the index columns against the body; then the chain of
 * checkpoints, that each names heads the chains really had, and the newest signature.
 * Works on a store opened read-only, so `ice journal verify` needs no lock.
 */
export function verifyRows(
  rows: Iterable<StoredFactRow>,
  opts: { checkpoints?: Checkpoint[]; checkSignature?: (cp: Checkpoint) => boolean } = {},
): VerifyResult {
  const heads = new Map<string, ChainHead>();
  let count = 0;
  let lastPos = 0;
  const broken = (chain: string, seq: number, pos: number, reason: string): VerifyResult => ({
    ok: false,
    count,
    chains: heads.size,
    lastPos,
    brokenChain: chain,
    brokenAt: seq,
    brokenPos: pos,
    reason,
  });
  for (const row of rows) {
    const h = heads.get(row.chain) ?? { seq: 0, hash: '' };
    if (row.seq !== h.seq + 1) return broken(row.chain, h.seq + 1, row.pos, `fact ${h.seq + 1} of ${row.chain} is missing`);
    const hash = sha256Hex(h.hash + row.body);
    if (hash !== row.hash) return broken(row.chain, row.seq, row.pos, 'hash does not match the fact body and the previous hash');
    if (row.prev !== h.hash) return broken(row.chain, row.seq, row.pos, 'stored prev does not match the previous hash');
    const mismatch = indexMismatch(row);
    if (mismatch) return broken(row.chain, row.seq, row.pos, mismatch);
    heads.set(row.chain, { seq: row.seq, hash });
    lastPos = row.pos;
    count++;
  }
  const cps = opts.checkpoints ?? [];
  if (!opts.checkSignature) return { ok: true, count, chains: heads.size, lastPos };
  // Every checkpoint links to the one before and names heads the chains really passed
  // through, so the newest signature attests all of them; older signatures add nothing.
  let prev = '';
  for (const cp of cps) {
    if (cp.prev !== prev || checkpointHash(prev, cp.heads) !== cp.hash) {
      return { ...broken('', 0, cp.pos, `checkpoint at position ${cp.pos} does not link to the one before (history was rewritten)`) };
    }
    for (const [chain, seq] of cp.heads) {
      const h = heads.get(chain);
      if (!h || h.seq < seq) return broken(chain, seq, cp.pos, `a signed checkpoint names fact ${seq} of ${chain}, which is missing`);
    }
    prev = cp.hash;
  }
  const last = cps.at(-1);
  if (last && !opts.checkSignature(last)) {
    return broken('', 0, last.pos, 'the newest checkpoint signature does not verify');
  }
  return { ok: true, count, chains: heads.size, lastPos, checkpoints: cps.length, attestedPos: last?.pos ?? 0 };
}

/**
 * Checks the hashes a checkpoint names against the stored facts (a second pass, by key).
 * `verifyRows` checks that the named positions exist; this checks that they hold the named
 * hashes, which catches a chain rewritten consistently from some seq on.
 */
export function checkpointMismatch(store: Pick<SqliteStore, 'factRow'>, cps: Checkpoint[]): { chain: string; seq: number } | undefined {
  for (const cp of cps) {
    for (const [chain, seq, hash] of cp.heads) {
      if (store.factRow(chain, seq)?.hash !== hash) return { chain, seq };
    }
  }
  return undefined;
}

/**
 * The index columns (seq, at, type, actor, intent_id) must say what the hashed body says, or
 * lookups by actor or intent (and restore's replay) would read a history other than the
 * verified one. Bodies are written with a fixed key order, so the check is a string
 * comparison of the body's head, not a parse.
 */
function indexMismatch(row: StoredFactRow): string | undefined {
  const head = `{"v":1,"seq":${row.seq},"at":${q(row.at ?? '')},"type":${q(row.type ?? '')},"origin":"`;
  if (row.type === undefined) return row.body.startsWith(`{"v":1,"seq":${row.seq},`) ? undefined : 'fact body carries another seq';
  if (!row.body.startsWith(head)) return 'seq, time or type columns disagree with the fact body';
  const originEnd = row.body.indexOf('"', head.length);
  const rest =
    (row.actor != null ? `,"actor":${q(row.actor)}` : '') + (row.intent_id != null ? `,"intentId":${q(row.intent_id)}` : '') + ',"causes":';
  if (originEnd < 0 || !row.body.startsWith(rest, originEnd + 1)) return 'actor or intent columns disagree with the fact body';
  if (row.actor != null && row.actor !== row.chain) return 'the chain column disagrees with the fact body';
  return undefined;
}

// eslint-disable-next-line no-control-regex -- exactly the characters JSON.stringify escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
/** JSON string literal; the common case (ids, times, types) needs no escaping. */
function q(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

export function rowToFact(row: StoredFactRow): Fact {
  const body = JSON.parse(row.body) as FactBody;
  return { ...body, prev: row.prev, hash: row.hash };
}
