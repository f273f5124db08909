import { JournalError, ensureError } from '../errors.js';
import { createHash } from 'node:crypto';
import { sha256Hex, type Fact, type FactBody, type FactDraft, type Grant, type Outcome, type SnapshotRecord } from '../protocol/index.js';
import type { Checkpoint, CommitBatch, PendingRecord, SqliteStore, StoredFactRow } from '../store/index.js';
import type { Clock } from '../util/clock.js';

/**
 * The journal: append-only, hash-chained facts, committed in groups.
 *
 * Ordering and atomicity:
 * - A `JournalTx` is built synchronously (no `await` between `begin()` and `commit()`):
 *   its facts get consecutive seqs and are chained to the previous fact the moment they are
 *   appended, so causes can name seqs. `begin()` refuses to open a second tx while one is
 *   open; that makes an interleaving bug loud instead of a broken chain.
 * - Committed txs are queued and flushed together on the next turn of the event loop, in
 *   seq order, in ONE store transaction (group commit). `commit()` resolves only after that
 *   transaction is durable; nobody may acknowledge earlier.
 * - If a flush fails, every tx in it is rejected, the chain head is reset to the store's,
 *   and `onFlushFailed` tells the host which actors ran ahead of the disk so it can drop
 *   their in-memory state and reload it.
 *
 * Hash: `hash = sha256(prevHash + bodyText)`, bodyText = the stored JSON of the fact minus
 * prev/hash. The text is hashed exactly as stored, so it need not be canonical; verifying is
 * one sha256 per fact over the stored bytes, near raw hash speed.
 *
 * Checkpoints: every flush, the authority signs `"<seq>:<hash>"` of the chain head the
 * flush ends at, in the same transaction. A verifier with the authority's public key can
 * then tell that history up to each checkpoint is the runtime's own, including the
 * in-process decisions that carry no signature of their own (see LocalTrust).
 */

/** Queue length at which a batch goes to the writer at once if it is idle. */
const EAGER_FLUSH = 16;

export interface VerifyResult {
  ok: boolean;
  /** Checkpoints whose hash was checked against the chain (when a key was given). */
  checkpoints?: number;
  /** Seq of the newest checkpoint, whose signature verified: all facts up to it are attested. */
  attestedSeq?: number;
  /** Facts checked. */
  count: number;
  headSeq: number;
  headHash: string;
  /** First seq whose link is broken. */
  brokenAt?: number;
  reason?: string;
}

export interface JournalOptions {
  clock: Clock;
  /** Signs a chain head; called once per flush. */
  attest?: (seq: number, hash: string) => { keyId: string; sig: string };
  onFlushFailed?: (actors: Set<string>, err: Error) => void;
}

interface QueuedTx {
  batch: CommitBatch;
  actors: Set<string>;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Journal {
  readonly #store: SqliteStore;
  readonly #clock: Clock;
  readonly #onFlushFailed: (actors: Set<string>, err: Error) => void;
  readonly #attest: JournalOptions['attest'];
  #headSeq: number;
  #headHash: string;
  #open: JournalTx | undefined;
  #queue: QueuedTx[] = [];
  #scheduled = false;
  #listeners = new Set<(f: Fact) => void>();
  #flushing: Promise<void> | undefined;
  #resolveFlushing: (() => void) | undefined;
  /** A batch is with the store's writer; the next one waits for it (pipeline depth 1). */
  #inFlight = false;
  /** Actors with queued or in-flight txs: their stored snapshot is behind memory. */
  #pendingActors = new Map<string, number>();
  /** Largest number of txs flushed in one store transaction (for stats). */
  maxBatch = 0;
  flushes = 0;

  constructor(store: SqliteStore, opts: JournalOptions) {
    this.#store = store;
    this.#clock = opts.clock;
    this.#onFlushFailed = opts.onFlushFailed ?? (() => {});
    this.#attest = opts.attest;
    const head = store.head();
    this.#headSeq = head.seq;
    this.#headHash = head.hash;
  }

  get headSeq(): number {
    return this.#headSeq;
  }

  get headHash(): string {
    return this.#headHash;
  }

  /** Opens a tx; append facts and attach snapshots/outcomes, then `commit()` in the same tick. */
  begin(): JournalTx {
    if (this.#open) throw new JournalError('a journal tx is already open (an await between begin() and commit()?)');
    const tx = new JournalTx(this);
    this.#open = tx;
    return tx;
  }

  /** @internal */
  _append(tx: JournalTx, draft: FactDraft): Fact {
    if (this.#open !== tx) throw new JournalError('journal tx is not open');
    const body: FactBody = {
      v: 1,
      seq: this.#headSeq + 1,
      at: new Date(this.#clock.now()).toISOString(),
      type: draft.type,
      origin: draft.origin,
      ...(draft.actor !== undefined ? { actor: draft.actor } : {}),
      ...(draft.intentId !== undefined ? { intentId: draft.intentId } : {}),
      causes: draft.causes ?? [],
      data: draft.data,
    };
    const text = JSON.stringify(body);
    const prev = this.#headHash;
    const hash = sha256Hex(prev + text);
    const fact: Fact = { ...body, prev, hash };
    this.#headSeq = body.seq;
    this.#headHash = hash;
    tx.batch.facts.push({ fact, body: text });
    return fact;
  }

  /** @internal */
  _commit(tx: JournalTx): Promise<void> {
    if (this.#open !== tx) throw new JournalError('journal tx is not open');
    this.#open = undefined;
    const b = tx.batch;
    if (b.facts.length + b.snapshots.length + b.outcomes.length + b.grants.length + b.pendingPut.length + b.pendingDelete.length === 0) {
      return Promise.resolve();
    }
    for (const a of tx.actors) this.#pendingActors.set(a, (this.#pendingActors.get(a) ?? 0) + 1);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ batch: b, actors: tx.actors, resolve, reject });
      this.#schedule();
    });
  }

  /** True while an actor has changes that are not yet durable. */
  hasPending(actor: string): boolean {
    return this.#pendingActors.has(actor);
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

  #settleActors(queue: QueuedTx[]): void {
    for (const q of queue) {
      for (const a of q.actors) {
        const n = (this.#pendingActors.get(a) ?? 1) - 1;
        if (n <= 0) this.#pendingActors.delete(a);
        else this.#pendingActors.set(a, n);
      }
    }
  }

  /** @internal */
  _abort(tx: JournalTx): void {
    if (this.#open !== tx) return;
    this.#open = undefined;
    if (tx.batch.facts.length > 0) {
      // Roll the in-memory head back to where this tx started.
      const first = tx.batch.facts[0]!.fact;
      this.#headSeq = first.seq - 1;
      this.#headHash = first.prev;
    }
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#inFlight) return;
    const queue = this.#queue;
    this.#queue = [];
    if (queue.length === 0) {
      this.#settleFlushing();
      return;
    }
    const merged: CommitBatch = { facts: [], snapshots: [], outcomes: [], grants: [], pendingPut: [], pendingDelete: [] };
    const snapshotByActor = new Map<string, SnapshotRecord>();
    const grantById = new Map<string, Grant>();
    for (const q of queue) {
      for (const f of q.batch.facts) merged.facts.push(f);
      // Only the newest snapshot of an actor in this group needs writing.
      for (const s of q.batch.snapshots) snapshotByActor.set(s.actor, s);
      for (const o of q.batch.outcomes) merged.outcomes.push(o);
      for (const g of q.batch.grants) grantById.set(g.id, g);
      for (const p of q.batch.pendingPut) merged.pendingPut.push(p);
      for (const d of q.batch.pendingDelete) merged.pendingDelete.push(d);
    }
    merged.snapshots = [...snapshotByActor.values()];
    merged.grants = [...grantById.values()];
    const last = merged.facts.at(-1)?.fact;
    if (last && this.#attest) {
      const a = this.#attest(last.seq, last.hash);
      merged.checkpoint = { seq: last.seq, hash: last.hash, keyId: a.keyId, sig: a.sig, at: last.at } satisfies Checkpoint;
    }
    this.#inFlight = true;
    this.#store.commit(merged).then(
      () => this.#committed(queue, merged),
      (e: unknown) => this.#failed(queue, e),
    );
  }

  #failed(queue: QueuedTx[], e: unknown): void {
    this.#inFlight = false;
    const err = new JournalError('commit failed; nothing in this group was acknowledged', { cause: ensureError(e) });
    // Everything queued after the failed group chained onto facts that never landed: fail it too.
    const later = this.#queue;
    this.#queue = [];
    const all = [...queue, ...later];
    const head = this.#store.head();
    this.#headSeq = head.seq;
    this.#headHash = head.hash;
    const actors = new Set<string>();
    for (const q of all) for (const a of q.actors) actors.add(a);
    this.#settleActors(all);
    this.#onFlushFailed(actors, err);
    for (const q of all) q.reject(err);
    this.#settleFlushing();
  }

  #committed(queue: QueuedTx[], merged: CommitBatch): void {
    this.#inFlight = false;
    this.#settleActors(queue);
    this.flushes++;
    if (queue.length > this.maxBatch) this.maxBatch = queue.length;
    for (const q of queue) q.resolve();
    if (this.#listeners.size > 0) {
      for (const { fact } of merged.facts) {
        for (const l of this.#listeners) {
          try {
            l(fact);
          } catch {
            // A listener's failure is its own; the journal has already committed.
          }
        }
      }
    }
    this.#schedule();
    this.#settleFlushing();
  }

  #settleFlushing(): void {
    if (this.#queue.length === 0 && !this.#inFlight && this.#resolveFlushing) {
      const r = this.#resolveFlushing;
      this.#flushing = undefined;
      this.#resolveFlushing = undefined;
      r();
    }
  }

  /** Resolves when every tx committed so far is durable (or failed). */
  drain(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled && !this.#inFlight) return Promise.resolve();
    this.#flushing ??= new Promise<void>((r) => (this.#resolveFlushing = r));
    return this.#flushing;
  }

  /** Listens to facts after they are durable. Returns the unsubscribe function. */
  onFact(listener: (f: Fact) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Newest first. */
  tail(opts: { limit?: number; actor?: string; beforeSeq?: number } = {}): Fact[] {
    return this.#store.tailRows(opts.limit ?? 50, opts.beforeSeq, opts.actor).map(rowToFact);
  }

  /** Oldest first, from `fromSeq`. */
  read(fromSeq = 1, limit = 1000): Fact[] {
    return this.#store.factRows(fromSeq, limit).map(rowToFact);
  }

  factsOfIntent(intentId: string): Fact[] {
    return this.#store.intentFactRows(intentId).map(rowToFact);
  }

  fact(seq: number): Fact | undefined {
    const row = this.#store.factRow(seq);
    return row ? rowToFact(row) : undefined;
  }

  /** Walks the whole chain and checks every signed checkpoint. See {@link verifyRows}. */
  verify(checkSignature?: (cp: Checkpoint) => boolean): VerifyResult {
    return verifyRows(this.#store.iterateFactRows(), checkSignature ? { checkpoints: this.#store.checkpoints(), checkSignature } : {});
  }
}

/**
 * Checks seq continuity, each stored hash against sha256(prev + body), and each body's seq.
 * Works on a store opened read-only, so `ice journal verify` needs no lock.
 */
export function verifyRows(
  rows: Iterable<StoredFactRow>,
  opts: { checkpoints?: Checkpoint[]; checkSignature?: (cp: Checkpoint) => boolean } = {},
): VerifyResult {
  let expectedSeq = 1;
  let prev = '';
  let count = 0;
  const cps = new Map((opts.checkpoints ?? []).map((cp) => [cp.seq, cp]));
  let cpCount = 0;
  let lastCp: Checkpoint | undefined;
  const broken = (brokenAt: number, reason: string): VerifyResult => ({
    ok: false,
    count,
    headSeq: brokenAt - 1,
    headHash: prev,
    brokenAt,
    reason,
  });
  for (const row of rows) {
    if (row.seq !== expectedSeq) {
      return broken(expectedSeq, `fact ${expectedSeq} is missing`);
    }
    const hash = createHash('sha256').update(prev).update(row.body).digest('hex');
    if (hash !== row.hash) {
      return broken(row.seq, 'hash does not match the fact body and the previous hash');
    }
    if (row.prev !== prev) {
      return broken(row.seq, 'stored prev does not match the previous hash');
    }
    const mismatch = indexMismatch(row);
    if (mismatch) {
      return broken(row.seq, mismatch);
    }
    const cp = cps.get(row.seq);
    if (cp) {
      if (cp.hash !== hash) {
        return broken(row.seq, 'a signed checkpoint names another hash here (history was rewritten)');
      }
      lastCp = cp;
      cpCount++;
    }
    prev = hash;
    expectedSeq++;
    count++;
  }
  // The chain links every fact to the newest checkpoint, so that one signature attests all
  // history up to it; older signatures would add nothing (and cost ~80 µs each).
  if (opts.checkSignature && lastCp && !opts.checkSignature(lastCp)) {
    return {
      ok: false,
      count,
      headSeq: expectedSeq - 1,
      headHash: prev,
      brokenAt: lastCp.seq,
      reason: 'the newest checkpoint signature does not verify',
    };
  }
  return {
    ok: true,
    count,
    headSeq: expectedSeq - 1,
    headHash: prev,
    ...(opts.checkSignature ? { checkpoints: cpCount, attestedSeq: lastCp?.seq ?? 0 } : {}),
  };
}

/**
 * The index columns (seq, at, type, actor, intent_id) must say what the hashed body says, or
 * lookups by actor or intent (and restore's replay) would read a history other than the
 * verified one. Bodies are written by `_append` with a fixed key order, so the check is a
 * string comparison of the body's head, not a parse.
 */
function indexMismatch(row: StoredFactRow): string | undefined {
  const head = `{"v":1,"seq":${row.seq},"at":${q(row.at ?? '')},"type":${q(row.type ?? '')},"origin":"`;
  if (row.type === undefined) return row.body.startsWith(`{"v":1,"seq":${row.seq},`) ? undefined : 'fact body carries another seq';
  if (!row.body.startsWith(head)) return 'seq, time or type columns disagree with the fact body';
  const originEnd = row.body.indexOf('"', head.length);
  const rest =
    (row.actor != null ? `,"actor":${q(row.actor)}` : '') + (row.intent_id != null ? `,"intentId":${q(row.intent_id)}` : '') + ',"causes":';
  if (originEnd < 0 || !row.body.startsWith(rest, originEnd + 1)) return 'actor or intent columns disagree with the fact body';
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

/** Facts, snapshots and records that commit together. Build it synchronously. */
export class JournalTx {
  readonly batch: CommitBatch = { facts: [], snapshots: [], outcomes: [], grants: [], pendingPut: [], pendingDelete: [] };
  readonly actors = new Set<string>();
  readonly #journal: Journal;

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  fact(draft: FactDraft): Fact {
    if (draft.actor) this.actors.add(draft.actor);
    return this.#journal._append(this, draft);
  }

  snapshot(rec: SnapshotRecord): this {
    this.actors.add(rec.actor);
    this.batch.snapshots.push(rec);
    return this;
  }

  outcome(intentId: string, digest: string, outcome: Outcome): this {
    this.batch.outcomes.push({ intentId, digest, outcome });
    return this;
  }

  grant(g: Grant): this {
    this.batch.grants.push(g);
    return this;
  }

  pendingPut(p: PendingRecord): this {
    this.batch.pendingPut.push(p);
    return this;
  }

  pendingDelete(intentId: string): this {
    this.batch.pendingDelete.push(intentId);
    return this;
  }

  /** Queues the tx for the next group commit; resolves once it is durable. */
  commit(): Promise<void> {
    return this.#journal._commit(this);
  }

  /** Drops the tx (only before commit), rewinding the chain head. */
  abort(): void {
    this.#journal._abort(this);
  }
}
