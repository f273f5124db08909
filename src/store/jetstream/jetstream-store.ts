import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
  type StoredMsg,
} from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ClosedError,
  ConflictError,
  IceError,
  JournalBrokenError,
  JournalError,
  NoRespondersError,
  TimeoutError,
  ValidationError,
  ensureError,
} from '../../errors.js';
import { EMPTY_HEAD, isRuntimeChain } from '../../host/ports.js';
import type { ActorIndexRow, ChainHead, LoadedChain, PendingRecord, StorePort, StoredOutcome, Turn } from '../../host/ports.js';
import type { Fact, Grant, SnapshotRecord } from '../../protocol/index.js';
import { matchesActorPage, type ActorPage, type ActorPageQuery } from '../../host/actor-page.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { DEDUP_WINDOW_NS, isWrongLastSequence } from './kv-stores.js';

/**
 * The store port on JetStream (cluster mode): one stream for every chain, three KV buckets of
 * data derived from it.
 *
 * ## Model (the contract)
 *
 * - A chain (`deployment/web`, `_runtime/n1`) lives on subject `ice.journal.<kind>.<id>` of
 *   stream `ICE_JOURNAL` (address `kind/id` → tokens kind, id).
 * - **One message per turn**, the only thing awaited before `commit()` resolves: JSON
 *   `{ v: 1, chain, facts, snapshot?, outcome?, pendingPut?, pendingDelete?, grants? }`. It
 *   carries everything needed to recover the turn. It is published with
 *   `expect.lastSubjectSequence` = stream sequence of the chain's previous message (0 for
 *   none) and `msgID = <subject>@<expected>` (the position): a retried publish is deduplicated,
 *   and so is a second writer's append at a taken position — the fence that holds on
 *   nats-server 2.9, where the expected sequence alone does not (docs/nats-fencing.md).
 * - The store keeps each chain's last stream sequence in memory, set by `load(chain)` and by
 *   each ack. A commit on a chain it has not loaded (or whose position it forgot) first reads
 *   the chain's last message itself; until the next `load` of such a chain it records no
 *   snapshot position for it (it replayed nothing, so it cannot vouch for earlier outcomes).
 * - **Per chain serial, across chains pipelined**: commit N+1 of a chain publishes only after
 *   N's ack (N's sequence is its expectation); commits of different chains are in flight at
 *   once. When a commit fails, every commit of that chain queued before the failure was
 *   known rejects without publishing (ConflictError, cause: the failure), and the chain's
 *   position is forgotten. Errors: ConflictError (fence), TimeoutError (E_TIMEOUT) or
 *   NoRespondersError (the stream had no leader for the whole retry window), JournalError
 *   otherwise. A publish is repeated while the stream elects a leader (no responders,
 *   timeouts; within `readRetryMs`): the msgID makes a repeat harmless, and an append refused
 *   for a wrong last sequence whose next message is this very turn counts as committed.
 * - Loads are queued on the chain like commits: a load sees every commit handed over before it.
 * - The fence is checked twice: `turn.after` must equal the head this store last saw for the
 *   chain (else ConflictError, nothing published), and JetStream refuses an append whose
 *   expected last subject sequence is stale (another writer appended → ConflictError).
 * - **Derived data, written after the ack and never awaited by `commit()`**: the outcome →
 *   `ICE_OUTCOMES` (key = intent id with `:` → `=`; the first writer wins, except that a final
 *   outcome replaces a `pending` one: an approved or refused intent has two turns with an
 *   outcome, as SQLite's INSERT OR REPLACE has it; compare and set on the revision),
 *   pendingPut/pendingDelete → `ICE_PENDING`, the snapshot → `ICE_SNAPSHOTS` as
 *   `{ ...snapshot, hash: <last fact hash>, streamSeq }` (chains whose turns carry no snapshot,
 *   i.e. runtime chains, get a position record `{ v, chain, seq, hash, streamSeq }` instead).
 *   Invariant that makes outcome lookups complete (no double execution): *every committed
 *   turn of a chain has its outcome in ICE_OUTCOMES or lies after the position recorded in
 *   ICE_SNAPSHOTS for that chain*. So derived writes of a chain go in commit order, a position
 *   is recorded only once the outcomes of every turn up to it that this store wrote or
 *   replayed are confirmed, a failed write is retried in the background with bounded backoff
 *   (holding the position back), and `load()` re-creates the outcome and pending records of
 *   every message it replays after the recorded position before it returns. Until its
 *   derived write is confirmed, an outcome (pending record, snapshot) is also answered from
 *   memory, so this store's own lookups are complete the moment `commit()` resolves.
 * - **Reads that decide correctness go to the stream leader**: `STREAM.MSG.GET` (never a
 *   direct get, which a lagging replica may answer) for the last message of a chain, KV gets on
 *   buckets without `allow_direct`. `load()` learns the chain's last sequence from the leader
 *   first and then reads up to it, so it cannot miss an acknowledged message: a few
 *   `next_by_subj` gets, then (for longer tails) an ordered consumer that is deleted right
 *   after. It checks the links (first fact of each message: seq = head.seq + 1, prev =
 *   head.hash; facts inside a message consecutive) and throws JournalBrokenError on a fork
 *   (a position taken twice), a gap (a position missing, also when the recorded snapshot is
 *   ahead of the stream) or a broken link (`hash`); it never skips. A recorded snapshot whose
 *   hash does not match the journal is ignored (replay from the start). Each fact's hash is
 *   recomputed too. It returns the newest snapshot it saw (the recorded one, or a newer one
 *   carried by a replayed message) and the facts after it.
 * - `grants()` returns `[]`: in a cluster, grant records live in the `ICE_GRANTS` bucket kept
 *   by src/cluster/cluster-grants.ts; `turn.grants` stay in the journal message as the audit
 *   record.
 *
 * Durability: an ack means the message is stored on a quorum of the stream's replicas (not
 * fsynced on 2.9; see docs/distributed.md). Reads are retried while a stream elects a leader.
 */

export interface JetStreamStoreOptions {
  /** Replicas of the stream and buckets when this store creates them (default 1). */
  replicas?: number;
  /** Stream name (default `ICE_JOURNAL`). */
  stream?: string;
  /** Subject prefix of the chains (default `ice.journal`): chain `k/i` → `<prefix>.k.i`. */
  prefix?: string;
  logger?: Logger;
  /** Timeout of one publish or API request in ms (default 5000). */
  timeoutMs?: number;
  /** How long reads keep retrying while a stream has no leader, in ms (default 15000). */
  readRetryMs?: number;
}

/** The journal message of one turn: the turn as the port describes it, minus what only the writer needs. */
type TurnMessage = { v: 1 } & Omit<Turn, 'after' | 'bodies' | 'stillSure'>;

interface Position {
  /** Hash of fact `seq` (the last fact of the message at `streamSeq`). */
  hash: string;
  /** Stream sequence of the message holding fact `seq`. */
  streamSeq: number;
}
/** An actor's snapshot in ICE_SNAPSHOTS, with where in the journal it stands. */
type CachedSnapshot = SnapshotRecord & Position;
/** The recorded position of a chain whose turns carry no snapshot (runtime chains). */
interface CachedPosition extends Position {
  v: 1;
  chain: string;
  seq: number;
}
type CacheRecord = CachedSnapshot | CachedPosition;

interface ChainPos {
  streamSeq: number;
  head: ChainHead;
}

interface DerivedItem {
  streamSeq: number;
  last: ChainHead;
  outcome?: StoredOutcome;
  pendingPut?: PendingRecord;
  pendingDelete?: string;
  snapshot?: SnapshotRecord;
  /** The position may be recorded once this item's writes are confirmed. */
  mayRecord: boolean;
  done: () => void;
}

interface Unwritten<T> {
  value: T;
  item: DerivedItem;
}

function forget<T>(m: Map<string, Unwritten<T>>, key: string, item: DerivedItem): void {
  if (m.get(key)?.item === item) m.delete(key);
}

interface ChainState {
  chain: string;
  subject: string;
  cacheKey: string;
  pos: ChainPos | undefined;
  /** Head after the last turn handed to `commit()` while any is unsettled. */
  projected: ChainHead | undefined;
  unsettled: number;
  /** Every turn up to `pos` was written or replayed by this store (a position may be recorded). */
  covered: boolean;
  epoch: number;
  failure: Error | undefined;
  /** Tail of the chain's serial queue (commits and loads). */
  tail: Promise<unknown>;
  derived: DerivedItem[];
  worker: Promise<void> | undefined;
  /** KV revision of the chain's ICE_SNAPSHOTS entry (0: none), undefined: unknown. */
  cacheRevision: number | undefined;
  /** Stream seq of the position recorded by this store (never recorded backwards). */
  recordedSeq: number;
  /** The position came from a read, no append of this store confirmed since (see #confirmPlacement). */
  fresh: boolean;
  /** The chain's ICE_WAKEUPS entry as this store last wrote it (null: none), undefined: unknown. */
  wakeIndexed: number | null | undefined;
}

interface ReadMsg {
  streamSeq: number;
  body: TurnMessage;
}

class Abandoned extends Error {
  override name = 'Abandoned';
}

const OUTCOMES = 'ICE_OUTCOMES';
const SNAPSHOTS = 'ICE_SNAPSHOTS';
const PENDING = 'ICE_PENDING';
const WAKEUPS = 'ICE_WAKEUPS';
/**
 * Up to this many messages are read with single gets, a longer tail with an ordered consumer.
 * Measured here (2.9.10, loopback): a get ~0.25 ms, a consumer (create, read, delete) 4-7 ms
 * on one server and on R3; they cross at 16-24 messages.
 */
const GET_BUDGET = 16;
/** How long after its completion or last use a key listing of the snapshots bucket serves the pages that continue a listing. */
const KEY_LISTING_REUSE_MS = 10_000;
/** The request timeout of one response of a key listing (see #listedAddresses). */
const KEY_LISTING_TIMEOUT_MS = 60_000;
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 5000;

/** A final outcome replaces a pending one; otherwise the stored outcome stays. */
function supersedes(next: StoredOutcome, stored: StoredOutcome): boolean {
  return stored.outcome.status === 'pending' && next.outcome.status !== 'pending';
}

/** Intent ids may hold `:`, which KV keys may not; ids never hold `=`. */
const intentKey = (intentId: string) => intentId.replaceAll(':', '=');
const TOKEN_RE = /^[^\s.*>/]+$/;

/** Errors that pass while a stream or the meta group elects a leader. */
function isTransient(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === 'TimeoutError' || e.name === 'JetStreamNotEnabled' || e.name === 'NoRespondersError') return true;
  if (e.name === 'RequestError' && e.cause instanceof Error && e.cause.name === 'NoRespondersError') return true;
  return e instanceof JetStreamApiError && (e.status === 503 || e.code === 10008);
}

function parseBody(raw: unknown): TurnMessage | undefined {
  // The first cluster journal (before one message per turn) wrote a bare array of facts.
  const body = Array.isArray(raw) ? { v: 1, facts: raw as unknown[] } : raw;
  if (typeof body !== 'object' || body === null) return undefined;
  const facts = (body as { facts?: unknown }).facts;
  if (!Array.isArray(facts) || facts.length === 0) return undefined;
  for (const f of facts as unknown[]) {
    if (typeof f !== 'object' || f === null) return undefined;
    const { seq, prev, hash } = f as Record<string, unknown>;
    if (typeof seq !== 'number' || typeof prev !== 'string' || typeof hash !== 'string') return undefined;
  }
  return body as TurnMessage;
}

const lastOf = (facts: Fact[]): Fact => facts[facts.length - 1]!;
const headOf = (body: TurnMessage): ChainHead => {
  const f = lastOf(body.facts);
  return { seq: f.seq, hash: f.hash };
};

function isCachedSnapshot(r: CacheRecord): r is CachedSnapshot {
  return 'actor' in r && 'snapshot' in r;
}

function stripCache(r: CachedSnapshot): SnapshotRecord {
  const { hash: _h, streamSeq: _s, ...snapshot } = r;
  return snapshot;
}

function parseCache(raw: unknown): CacheRecord | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r['seq'] !== 'number' || typeof r['hash'] !== 'string' || typeof r['streamSeq'] !== 'number') return undefined;
  return raw as CacheRecord;
}

export class JetStreamStore implements StorePort {
  readonly kind = 'jetstream' as const;
  readonly stream: string;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #outcomes: KV;
  readonly #snapshots: KV;
  readonly #wakeups: KV;
  readonly #pending: KV;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #readRetryMs: number;
  readonly #chains = new Map<string, ChainState>();
  readonly #commits = new Set<Promise<unknown>>();
  readonly #derivedOpen = new Set<Promise<void>>();
  /** Derived data acknowledged in the journal but not yet confirmed in KV (answered from here). */
  readonly #unwrittenOutcomes = new Map<string, Unwritten<StoredOutcome>>();
  readonly #unwrittenPending = new Map<string, Unwritten<PendingRecord | null>>();
  readonly #unwrittenSnapshots = new Map<string, Unwritten<SnapshotRecord>>();
  /** The last key listing of the snapshots bucket per kind filter ('' for all), for the pages that continue it. */
  readonly #keyListings = new Map<string, { at: number; addresses: string[] }>();
  #listingJsm: Promise<JetStreamManager> | undefined;
  readonly #stop = new AbortController();
  /** No new commits or loads. */
  #closed = false;
  /** Failed derived writes are not retried any more. */
  #closing = false;

  private constructor(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    kvs: { outcomes: KV; snapshots: KV; pending: KV; wakeups: KV },
    stream: string,
    prefix: string,
    log: Logger,
    timeoutMs: number,
    readRetryMs: number,
  ) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#outcomes = kvs.outcomes;
    this.#snapshots = kvs.snapshots;
    this.#wakeups = kvs.wakeups;
    this.#pending = kvs.pending;
    this.stream = stream;
    this.#prefix = prefix;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
    this.#readRetryMs = readRetryMs;
  }

  /** Opens the stream and the buckets, creating them (with `replicas`) on first use. */
  static async open(nc: NatsConnection, opts: JetStreamStoreOptions = {}): Promise<JetStreamStore> {
    const stream = opts.stream ?? 'ICE_JOURNAL';
    const prefix = opts.prefix ?? 'ice.journal';
    const replicas = opts.replicas ?? 1;
    const timeoutMs = opts.timeoutMs ?? 5000;
    const log = opts.logger ?? silentLogger();
    const readRetryMs = opts.readRetryMs ?? 15_000;
    // a node may start while a stream or the meta group elects a leader
    const deadline = Date.now() + readRetryMs;
    const retrying = async <T>(fn: () => Promise<T>): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn();
        } catch (e) {
          if (!isTransient(e) || Date.now() >= deadline || nc.isClosed()) throw e;
          await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
        }
      }
    };
    const jsm = await retrying(() => jetstreamManager(nc, { timeout: timeoutMs }));
    const js = jetstream(nc, { timeout: timeoutMs });
    const config = {
      name: stream,
      subjects: [`${prefix}.>`],
      num_replicas: replicas,
      // Reads go to the leader (STREAM.MSG.GET); a direct get may be answered by a lagging
      // replica and miss an acknowledged message.
      allow_direct: false,
      duplicate_window: DEDUP_WINDOW_NS,
    };
    await retrying(async () => {
      try {
        await jsm.streams.info(stream);
      } catch (e) {
        if (ensureError(e).name !== 'StreamNotFoundError' && !/not found/i.test(ensureError(e).message)) throw e;
        try {
          await jsm.streams.add(config);
        } catch (addErr) {
          // another process created it meanwhile
          await jsm.streams.info(stream).catch(() => {
            throw addErr;
          });
        }
      }
    });
    const kvm = new Kvm(js);
    const bucket = (name: string) => retrying(() => kvm.create(name, { history: 1, replicas, allow_direct: false }));
    const [outcomes, snapshots, pending, wakeups] = await Promise.all([
      bucket(OUTCOMES),
      bucket(SNAPSHOTS),
      bucket(PENDING),
      bucket(WAKEUPS),
    ]);
    return new JetStreamStore(nc, js, jsm, { outcomes, snapshots, pending, wakeups }, stream, prefix, log, timeoutMs, readRetryMs);
  }

  // -------------------------------------------------------------------------------------------
  // commit

  commit(turn: Turn): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('JetStreamStore'));
    let st: ChainState;
    try {
      st = this.#chain(turn.chain);
    } catch (e) {
      return Promise.reject(ensureError(e));
    }
    // a new actor: key listings made before it no longer hold every actor (see #listedAddresses)
    if (turn.after.seq === 0 && turn.snapshot !== undefined) this.#keyListings.clear();
    const epoch = st.epoch;
    const lastFact = turn.facts[turn.facts.length - 1];
    st.unsettled++;
    if (lastFact) st.projected = { seq: lastFact.seq, hash: lastFact.hash };
    const p = st.tail.then(() => this.#commitNow(st, turn, epoch));
    st.tail = p.catch(() => {});
    this.#commits.add(p);
    const settle = () => {
      this.#commits.delete(p);
      if (--st.unsettled === 0) st.projected = undefined;
    };
    void p.then(settle, settle);
    return p;
  }

  async #commitNow(st: ChainState, turn: Turn, epoch: number): Promise<void> {
    const first = turn.facts[0];
    if (epoch !== st.epoch) {
      throw new ConflictError(
        `turn of ${st.chain} at seq ${first?.seq ?? '?'} was not published: an earlier commit of this chain failed` +
          (st.failure ? ` (${st.failure.message})` : ''),
        { cause: st.failure },
      );
    }
    try {
      if (!first) throw new JournalError(`a turn of ${st.chain} has no facts`);
      checkTurnLinks(turn);
      if (!st.pos) {
        st.pos = await this.#readPosition(st);
        st.fresh = true;
      }
      const pos = st.pos;
      if (pos.head.seq !== turn.after.seq || pos.head.hash !== turn.after.hash) {
        throw new ConflictError(
          `${st.chain} is at seq ${pos.head.seq}, the turn was chained onto seq ${turn.after.seq}` +
            (pos.head.seq === turn.after.seq ? ' with another hash' : '') +
            ': another writer appended or the caller is stale',
        );
      }
      // A wake-up this turn needs earlier than the index has is written first: an index entry
      // may be early (a wake finds nothing due yet), never missing after a crash.
      // (the record's wakeAt as the Host set it, whatever the status: as SQLite indexes it)
      const wake = turn.snapshot ? turn.snapshot.wakeAt : null;
      if (typeof wake === 'number' && (st.wakeIndexed === undefined || st.wakeIndexed === null || wake < st.wakeIndexed)) {
        await this.#putWakeup(st, wake);
      }
      let streamSeq = await this.#publish(st, turn, pos.streamSeq);
      // The fence can fail on nats-server 2.9 when two appends with one expectation are in
      // flight together (docs/nats-fencing.md). That needs a second writer, which can only be
      // there on the first append after this store read the chain (a previous owner may still
      // be sending) or when the writer is no longer sure of its lease (it may be the previous
      // owner): then read back which message took the position.
      if (st.fresh || (turn.stillSure !== undefined && !turn.stillSure())) {
        streamSeq = await this.#confirmPlacement(st, turn, pos.streamSeq, streamSeq);
      }
      st.fresh = false;
      const head = { seq: lastOf(turn.facts).seq, hash: lastOf(turn.facts).hash };
      st.pos = { streamSeq, head };
      // later or no wake-up: the index follows after the append (a failure leaves it early: harmless)
      if (wake !== null && (wake ?? null) !== st.wakeIndexed) {
        await (wake === undefined ? this.#deleteWakeup(st) : this.#putWakeup(st, wake)).catch((e: unknown) => {
          st.wakeIndexed = undefined;
          this.#log.warn({ chain: st.chain, err: ensureError(e).message }, 'could not update the wake-up index');
        });
      }
      this.#enqueueDerived(st, {
        streamSeq,
        last: head,
        ...(turn.outcome !== undefined ? { outcome: turn.outcome } : {}),
        ...(turn.pendingPut !== undefined ? { pendingPut: turn.pendingPut } : {}),
        ...(turn.pendingDelete !== undefined ? { pendingDelete: turn.pendingDelete } : {}),
        ...(turn.snapshot !== undefined ? { snapshot: turn.snapshot } : {}),
        mayRecord: st.covered,
      });
    } catch (e) {
      const err = e instanceof IceError ? e : this.#wrap(e, `commit of ${st.chain} at seq ${first?.seq ?? '?'}`, st.subject);
      st.epoch++;
      st.pos = undefined;
      st.projected = undefined; // every unsettled turn of the chain fails with this one
      st.covered = false;
      st.failure = err;
      throw err;
    }
  }

  /**
   * The first message on the chain after `expected` is the one that holds the position: ours
   * (or an identical copy of ours), or another writer's — then ours is an orphan and this
   * turn did not happen.
   */
  async #confirmPlacement(st: ChainState, turn: Turn, expected: number, streamSeq: number): Promise<number> {
    const first = await this.#nextMessage(st.subject, expected + 1);
    if (!first || first.streamSeq === streamSeq) return streamSeq;
    const facts = first.body.facts;
    if (facts[0]?.hash === turn.facts[0]!.hash && lastOf(facts).hash === lastOf(turn.facts).hash) return first.streamSeq;
    throw new ConflictError(
      `${st.chain}: stream seq ${first.streamSeq} took position ${turn.facts[0]!.seq} before this turn (stream seq ${streamSeq}), ` +
        'which is an orphan: another writer appended with the same expectation',
    );
  }

  /** Publishes one turn with its fence; resolves with its stream sequence. */
  async #publish(st: ChainState, turn: Turn, expected: number): Promise<number> {
    const first = turn.facts[0]!;
    try {
      const data = encodeTurn(turn);
      // The message id names the position (subject and expected sequence), not the content:
      // nats-server 2.9 checks the expected sequence of replicated streams before the append
      // is ordered, so two writers in flight together can both pass it, but it applies
      // message-id dedup in log order on every replica — the second append at a position is
      // never stored (docs/nats-fencing.md). Repeated while the stream elects a leader (no
      // responders, timeouts): a repeat of this publish is deduplicated the same way.
      const msgID = `${st.subject}@${expected}`;
      const ack = await this.#read(`commit of ${st.chain} at seq ${first.seq}`, () =>
        this.#js.publish(st.subject, data, { msgID, expect: { lastSubjectSequence: expected }, timeout: this.#timeoutMs }),
      );
      if (!ack.duplicate) return ack.seq;
      // The position was taken: by an earlier attempt of this very turn (a lost ack), or by
      // another writer, whose message is then the one stored there.
      const there = await this.#nextMessage(st.subject, expected + 1).catch(() => undefined);
      const facts = there?.body.facts;
      if (there && facts && facts[0]?.hash === first.hash && lastOf(facts).hash === lastOf(turn.facts).hash) return there.streamSeq;
      throw new ConflictError(
        `${st.chain}: the position after stream seq ${expected} was taken by another writer (${there?.streamSeq ?? ack.seq})`,
      );
    } catch (e) {
      if (isWrongLastSequence(e)) {
        // An earlier attempt of this very publish may have landed (a retry after a lost ack
        // then meets the sequence check): if the next message is ours, the turn is committed.
        const own = await this.#nextMessage(st.subject, expected + 1).catch(() => undefined);
        const facts = own?.body.facts;
        if (
          own &&
          facts &&
          facts.length === turn.facts.length &&
          facts[0]?.hash === first.hash &&
          lastOf(facts).hash === lastOf(turn.facts).hash
        ) {
          return own.streamSeq;
        }
        throw new ConflictError(`${st.chain} moved past stream seq ${expected}: another writer appended (${ensureError(e).message})`, {
          cause: e,
        });
      }
      throw this.#wrap(e, `commit of ${st.chain} at seq ${first.seq}`, st.subject);
    }
  }

  /** The chain's last message from the stream leader, as a position. */
  async #readPosition(st: ChainState): Promise<ChainPos> {
    const last = await this.#lastMessage(st);
    return last ? { streamSeq: last.streamSeq, head: headOf(last.body) } : { streamSeq: 0, head: { ...EMPTY_HEAD } };
  }

  // -------------------------------------------------------------------------------------------
  // derived data

  #enqueueDerived(st: ChainState, item: Omit<DerivedItem, 'done'>): void {
    let done!: () => void;
    const settled = new Promise<void>((r) => (done = r));
    this.#derivedOpen.add(settled);
    void settled.then(() => this.#derivedOpen.delete(settled));
    const it: DerivedItem = { ...item, done };
    if (it.outcome) this.#unwrittenOutcomes.set(it.outcome.intentId, { value: it.outcome, item: it });
    if (it.pendingPut) this.#unwrittenPending.set(it.pendingPut.intentId, { value: it.pendingPut, item: it });
    if (it.pendingDelete !== undefined) this.#unwrittenPending.set(it.pendingDelete, { value: null, item: it });
    if (it.snapshot) this.#unwrittenSnapshots.set(st.chain, { value: it.snapshot, item: it });
    st.derived.push(it);
    this.#kick(st);
  }

  #kick(st: ChainState): void {
    if (st.worker) return;
    st.worker = this.#runDerived(st).finally(() => {
      st.worker = undefined;
      if (st.derived.length > 0) this.#kick(st); // enqueued while the worker was finishing
    });
  }

  /** Writes a chain's derived data in commit order; records the position last. */
  async #runDerived(st: ChainState): Promise<void> {
    while (st.derived.length > 0) {
      const batch = st.derived.splice(0, st.derived.length);
      let abandoned = false;
      try {
        await Promise.all(
          batch
            .filter((i) => i.outcome)
            .map((i) => this.#retrying(`outcome of ${i.outcome!.intentId}`, () => this.#storeOutcome(i.outcome!))),
        );
        for (const i of batch) {
          if (i.pendingPut) {
            const rec = i.pendingPut;
            await this.#retrying(`pending ${rec.intentId}`, () => this.#pending.put(intentKey(rec.intentId), JSON.stringify(rec)));
          }
          if (i.pendingDelete !== undefined) {
            const id = i.pendingDelete;
            await this.#retrying(`pending ${id}`, () => this.#pending.delete(intentKey(id)));
          }
        }
      } catch (e) {
        // only Abandoned is expected here (writes are retried until the store closes)
        if (!(e instanceof Abandoned)) this.#log.error({ chain: st.chain, err: ensureError(e).message }, 'derived write failed');
        abandoned = true;
        // this store can no longer vouch for the chain: never record a position past the hole
        st.covered = false;
        for (const later of st.derived) later.mayRecord = false;
      }
      if (!abandoned) {
        const rec = this.#positionToRecord(st, batch);
        if (rec) {
          try {
            await this.#retrying(`position of ${st.chain}`, () => this.#recordPosition(st, rec), 5);
          } catch (e) {
            // a cache: a later turn records a newer position
            this.#log.warn({ chain: st.chain, err: ensureError(e).message }, 'could not record the snapshot position');
          }
        }
      }
      for (const i of batch) {
        if (i.outcome) forget(this.#unwrittenOutcomes, i.outcome.intentId, i);
        if (i.pendingPut) forget(this.#unwrittenPending, i.pendingPut.intentId, i);
        if (i.pendingDelete !== undefined) forget(this.#unwrittenPending, i.pendingDelete, i);
        if (i.snapshot) forget(this.#unwrittenSnapshots, st.chain, i);
        i.done();
      }
    }
  }

  /** What to record in ICE_SNAPSHOTS after `batch` is confirmed, if anything. */
  #positionToRecord(st: ChainState, batch: DerivedItem[]): CacheRecord | undefined {
    const eligible = batch.filter((i) => i.mayRecord && i.streamSeq > st.recordedSeq);
    if (isRuntimeChain(st.chain)) {
      const last = eligible[eligible.length - 1];
      return last ? { v: 1, chain: st.chain, seq: last.last.seq, hash: last.last.hash, streamSeq: last.streamSeq } : undefined;
    }
    const withSnap = eligible.filter((i) => i.snapshot);
    const last = withSnap[withSnap.length - 1];
    return last ? { ...last.snapshot!, hash: last.last.hash, streamSeq: last.streamSeq } : undefined;
  }

  /** Writes the chain's cache record unless a newer one is stored (compare and set). */
  async #recordPosition(st: ChainState, rec: CacheRecord): Promise<void> {
    const data = JSON.stringify(rec);
    for (let attempt = 0; attempt < 5; attempt++) {
      if (st.cacheRevision === undefined) {
        const e = await this.#snapshots.get(st.cacheKey);
        st.cacheRevision = e?.revision ?? 0;
        if (e && e.operation === 'PUT') {
          const stored = parseCache(e.json<unknown>());
          if (stored && stored.streamSeq >= rec.streamSeq) {
            st.recordedSeq = Math.max(st.recordedSeq, stored.streamSeq);
            return;
          }
        } else if (e) {
          st.cacheRevision = 0; // deleted: create works on a deleted key
        }
      }
      try {
        st.cacheRevision =
          st.cacheRevision === 0
            ? await this.#snapshots.create(st.cacheKey, data)
            : await this.#snapshots.update(st.cacheKey, data, st.cacheRevision);
        st.recordedSeq = rec.streamSeq;
        return;
      } catch (e) {
        if (!isWrongLastSequence(e)) throw e;
        st.cacheRevision = undefined;
      }
    }
    throw new Error(`the snapshot record of ${st.chain} kept changing`);
  }

  /**
   * Stores an intent's outcome: the first writer wins (a replay or a late writer never
   * overwrites), except that a final outcome replaces a `pending` one (the intent was
   * approved or refused later, on a later turn). Compare and set on the revision, so the
   * order in which two writers arrive does not matter.
   * @param known the entry already read (a replay reads first), else the write tries a create.
   */
  async #storeOutcome(o: StoredOutcome, known?: KvEntry | null): Promise<void> {
    const key = intentKey(o.intentId);
    const data = JSON.stringify(o);
    let cur = known;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        if (!cur || cur.operation !== 'PUT') {
          await this.#outcomes.create(key, data);
          return;
        }
        if (!supersedes(o, cur.json<StoredOutcome>())) return;
        await this.#outcomes.update(key, data, cur.revision);
        return;
      } catch (e) {
        if (!isWrongLastSequence(e)) throw e;
      }
      cur = await this.#outcomes.get(key);
    }
    throw new Error(`the outcome of ${o.intentId} kept changing`);
  }

  /**
   * Runs a derived write until it succeeds, with bounded backoff. Gives up (Abandoned) only
   * when the store closes or the connection is gone; `maxAttempts` bounds it otherwise.
   */
  async #retrying<T>(what: string, fn: () => Promise<T>, maxAttempts = Infinity): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (this.#closing || this.#nc.isClosed()) throw new Abandoned(`${what}: ${ensureError(e).message}`);
        if (attempt + 1 >= maxAttempts) throw e;
        this.#log.warn({ what, attempt, err: ensureError(e).message }, 'derived write failed; retrying');
        const ms = Math.min(RETRY_MIN_MS * 2 ** attempt, RETRY_MAX_MS) * (0.5 + Math.random() / 2);
        await this.#sleep(ms);
        if (this.#closing) throw new Abandoned(`${what}: store closed`);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const signal = this.#stop.signal;
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // load

  load(chain: string): Promise<LoadedChain> {
    if (this.#closed) return Promise.reject(new ClosedError('JetStreamStore'));
    let st: ChainState;
    try {
      st = this.#chain(chain);
    } catch (e) {
      return Promise.reject(ensureError(e));
    }
    // in the chain's queue: a load sees every commit handed over before it
    const p = st.tail.then(() => this.#loadNow(st));
    st.tail = p.catch(() => {});
    return p;
  }

  async #loadNow(st: ChainState): Promise<LoadedChain> {
    try {
      const cacheEntry = await this.#read(`snapshot record of ${st.chain}`, () => this.#snapshots.get(st.cacheKey));
      st.cacheRevision = cacheEntry?.revision ?? 0;
      const cache = cacheEntry && cacheEntry.operation === 'PUT' ? parseCache(cacheEntry.json<unknown>()) : undefined;
      const last = await this.#lastMessage(st);
      let loaded: { result: LoadedChain; replayFrom: number; messages: ReadMsg[] };
      try {
        loaded = await this.#replay(st, cache, last);
      } catch (e) {
        // a fork at or before the recorded position: replay from the start to name both messages
        if (!(e instanceof JournalBrokenError) || e.problem !== 'fork' || !cache || e.seq > cache.seq) throw e;
        loaded = await this.#replay(st, undefined, last).catch((e2: unknown) => {
          throw e2 instanceof JournalBrokenError ? e2 : e;
        });
      }
      await this.#replayDerived(
        st,
        loaded.messages.filter((m) => m.streamSeq > loaded.replayFrom),
      );
      st.pos = { streamSeq: last?.streamSeq ?? 0, head: loaded.result.head };
      st.fresh = true;
      st.covered = true;
      if (cache) st.recordedSeq = Math.max(st.recordedSeq, Math.min(cache.streamSeq, last?.streamSeq ?? 0));
      return loaded.result;
    } catch (e) {
      st.pos = undefined;
      st.covered = false;
      if (e instanceof IceError) throw e;
      throw this.#wrap(e, `load of ${st.chain}`, st.subject);
    }
  }

  /**
   * Reads the chain from the recorded position (from the start without one, or for a chain
   * whose record holds no snapshot) up to `last`, checking every link.
   * @returns the loaded chain, and from which stream seq on derived records must be re-created.
   */
  async #replay(
    st: ChainState,
    cache: CacheRecord | undefined,
    last: ReadMsg | undefined,
  ): Promise<{ result: LoadedChain; replayFrom: number; messages: ReadMsg[] }> {
    const lastSeq = last?.streamSeq ?? 0;
    if (cache && cache.streamSeq > lastSeq && last && headOf(last.body).seq >= cache.seq) {
      // The chain reaches the recorded position, at other stream sequences (after all servers
      // of a 2.9 cluster were SIGKILLed, turns were stored again at new sequences): the chain
      // decides, not the cache. Replay it whole; the links are checked as always.
      this.#log.warn(
        { chain: st.chain, cachedStreamSeq: cache.streamSeq, lastStreamSeq: lastSeq },
        'the recorded position names a stream sequence past the chain; replaying the chain from the start',
      );
      cache = undefined;
    }
    if (cache && cache.streamSeq > lastSeq) {
      const lastHead = last ? headOf(last.body) : EMPTY_HEAD;
      throw new JournalBrokenError(
        st.chain,
        lastHead.seq + 1,
        'gap',
        `the recorded snapshot stands at seq ${cache.seq} (stream seq ${cache.streamSeq}), but the stream's last message of the chain is at stream seq ${lastSeq} (seq ${lastHead.seq}): acknowledged messages were lost`,
        [lastSeq, cache.streamSeq],
      );
    }
    let start: { head: ChainHead; streamSeq: number; snapshot: SnapshotRecord | undefined } = {
      head: EMPTY_HEAD,
      streamSeq: 0,
      snapshot: undefined,
    };
    let replayFrom = 0;
    if (cache && isCachedSnapshot(cache)) {
      const at = cache.streamSeq === lastSeq ? last : await this.#messageAt(st.subject, cache.streamSeq);
      const atHead = at ? headOf(at.body) : undefined;
      if (atHead && atHead.seq === cache.seq && atHead.hash === cache.hash) {
        start = { head: { seq: cache.seq, hash: cache.hash }, streamSeq: cache.streamSeq, snapshot: stripCache(cache) };
        replayFrom = cache.streamSeq;
      } else {
        this.#log.warn(
          { chain: st.chain, seq: cache.seq, streamSeq: cache.streamSeq },
          'the recorded snapshot does not match the journal; replaying from the start',
        );
      }
    }
    const messages: ReadMsg[] = [];
    if (start.streamSeq < lastSeq) {
      for await (const m of this.#scan(st.subject, start.streamSeq + 1, lastSeq, last)) messages.push(m);
      if (messages[messages.length - 1]?.streamSeq !== lastSeq) {
        throw new JournalError(`the journal of ${st.chain} changed while it was read (stream seq ${lastSeq} is gone)`);
      }
    }
    // check the links
    let head = start.head;
    let headStreamSeq = start.streamSeq;
    const positionOf = new Map<number, number>(); // fact seq → stream seq of its message
    const facts: Fact[] = [];
    let snapshot = start.snapshot;
    const orphans = new Set<number>();
    for (const m of messages) {
      // First at a position wins: a later message whose first fact claims a position already
      // taken is an orphan (two writers with the same expectation, both accepted: see
      // docs/nats-fencing.md). Its writer confirmed its placement and was refused, so no one
      // was told it executed; it is skipped, loudly, and never replayed.
      if (m.body.facts[0]!.seq <= head.seq && (m.body.chain === undefined || m.body.chain === st.chain)) {
        orphans.add(m.streamSeq);
        this.#log.warn(
          { chain: st.chain, seq: m.body.facts[0]!.seq, streamSeq: m.streamSeq, taken: positionOf.get(m.body.facts[0]!.seq) },
          'an orphaned turn claims a position already taken; skipped (first at a position wins)',
        );
        continue;
      }
      if (m.body.chain !== undefined && m.body.chain !== st.chain) {
        throw new JournalBrokenError(
          st.chain,
          head.seq + 1,
          'hash',
          `message at stream seq ${m.streamSeq} belongs to chain ${m.body.chain}`,
          [m.streamSeq],
        );
      }
      for (const f of m.body.facts) {
        if (f.seq <= head.seq) {
          const other = positionOf.get(f.seq) ?? (f.seq <= start.head.seq ? start.streamSeq : headStreamSeq);
          throw new JournalBrokenError(
            st.chain,
            f.seq,
            'fork',
            `seq ${f.seq} is taken twice: by the message at stream seq ${other} and by the one at stream seq ${m.streamSeq}`,
            [other, m.streamSeq],
          );
        }
        if (f.seq > head.seq + 1) {
          throw new JournalBrokenError(
            st.chain,
            head.seq + 1,
            'gap',
            `seq ${head.seq + 1} is missing: the message at stream seq ${m.streamSeq} continues with seq ${f.seq} after seq ${head.seq}`,
            [headStreamSeq, m.streamSeq],
          );
        }
        if (f.prev !== head.hash) {
          throw new JournalBrokenError(
            st.chain,
            f.seq,
            'hash',
            `seq ${f.seq} (stream seq ${m.streamSeq}) does not link to the hash of seq ${head.seq}`,
            [headStreamSeq, m.streamSeq],
          );
        }
        // Each fact's own hash is checked by the host before it replays anything (both modes).
        head = { seq: f.seq, hash: f.hash };
        positionOf.set(f.seq, m.streamSeq);
        facts.push(f);
      }
      headStreamSeq = m.streamSeq;
      if (m.body.snapshot) snapshot = m.body.snapshot;
    }
    // a chain whose record is only a position (runtime chain): skip re-creating what it covers
    if (cache && !isCachedSnapshot(cache) && replayFrom === 0) {
      const at = messages.find((m) => m.streamSeq === cache.streamSeq);
      const atHead = at ? headOf(at.body) : undefined;
      if (atHead && atHead.seq === cache.seq && atHead.hash === cache.hash) replayFrom = cache.streamSeq;
    }
    const after = snapshot ? facts.filter((f) => f.seq > snapshot.seq) : facts;
    return {
      result: { ...(snapshot ? { snapshot } : {}), facts: after, head },
      replayFrom,
      messages: orphans.size > 0 ? messages.filter((m) => !orphans.has(m.streamSeq)) : messages,
    };
  }

  /** Re-creates the outcome and pending records of replayed messages (awaited by load). */
  async #replayDerived(st: ChainState, messages: ReadMsg[]): Promise<void> {
    const outcomes = messages.flatMap((m) => (m.body.outcome ? [m.body.outcome] : []));
    const pendingOps = new Map<string, PendingRecord | null>(); // last op per intent wins
    for (const m of messages) {
      if (m.body.pendingPut) pendingOps.set(m.body.pendingPut.intentId, m.body.pendingPut);
      if (m.body.pendingDelete !== undefined) pendingOps.set(m.body.pendingDelete, null);
    }
    const restore = async (o: StoredOutcome) => {
      const existing = await this.#outcomes.get(intentKey(o.intentId));
      if (existing?.operation === 'PUT' && !supersedes(o, existing.json<StoredOutcome>())) return; // the usual case: one read
      await this.#storeOutcome(o, existing);
    };
    for (let i = 0; i < outcomes.length; i += 64) {
      await Promise.all(outcomes.slice(i, i + 64).map((o) => this.#read(`outcome of ${o.intentId}`, () => restore(o))));
    }
    for (const [id, rec] of pendingOps) {
      if (this.#unwrittenPending.has(id)) continue; // this store's own write of it is queued
      await this.#read(`pending ${id}`, async () => {
        if (rec === null) {
          const e = await this.#pending.get(intentKey(id));
          if (e && e.operation === 'PUT') await this.#pending.delete(intentKey(id));
          return;
        }
        try {
          await this.#pending.create(intentKey(id), JSON.stringify(rec));
        } catch (e) {
          if (!isWrongLastSequence(e)) throw e;
          // There already: an approval counted since may be missing from it (its write lost).
          const was = await this.#pending.get(intentKey(id));
          if (was?.operation === 'PUT' && (was.json<PendingRecord>().approvals?.length ?? 0) < (rec.approvals?.length ?? 0))
            await this.#pending.put(intentKey(id), JSON.stringify(rec));
        }
      });
    }
    if (outcomes.length > 0 || pendingOps.size > 0) {
      this.#log.debug(
        { chain: st.chain, outcomes: outcomes.length, pending: pendingOps.size },
        'derived records restored from the journal',
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // reading the journal

  /** Messages of `subject` with stream seq in [from, to], oldest first. */
  async *#scan(subject: string, from: number, to: number, last?: ReadMsg): AsyncGenerator<ReadMsg> {
    let cursor = from;
    let budget = GET_BUDGET;
    let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>> | undefined;
    while (!consumer) {
      for (let gets = 0; cursor <= to && gets < budget; gets++) {
        if (last && cursor === to) {
          yield last;
          return;
        }
        const m = await this.#nextMessage(subject, cursor);
        if (!m || m.streamSeq > to) return;
        yield m;
        cursor = m.streamSeq + 1;
      }
      if (cursor > to) return;
      // A consumer is only faster. Creating one goes through the meta leader, which may be
      // electing while the stream itself answers (its leader killed), or the stream may allow no
      // more consumers: then the scan goes on by gets from the stream leader.
      try {
        consumer = await this.#js.consumers.get(this.stream, { filter_subjects: subject, opt_start_seq: cursor });
      } catch (e) {
        if (this.#nc.isClosed() || this.#closing) throw e;
        const err = ensureError(e).message;
        if (isTransient(e)) this.#log.debug({ subject, err }, 'no read consumer; reading on by gets');
        else this.#log.warn({ subject, err }, 'a read consumer was refused; reading on by gets');
        budget = GET_BUDGET * 4;
      }
    }
    try {
      const msgs = await consumer.consume({ max_messages: 256 });
      // a consumer that stalls (the message at `to` vanished) must not hang the caller
      const timer = setTimeout(() => void msgs.close(), this.#readRetryMs + this.#timeoutMs);
      try {
        for await (const m of msgs) {
          if (m.seq > to) break;
          yield { streamSeq: m.seq, body: this.#parse(subject, m.seq, m.json<unknown>()) };
          if (m.seq >= to) break;
        }
      } finally {
        clearTimeout(timer);
        await msgs.close().catch(() => {});
      }
    } finally {
      await consumer
        .delete()
        .catch((e: unknown) => this.#log.warn({ subject, err: ensureError(e).message }, 'could not delete a read consumer'));
    }
  }

  async #lastMessage(st: ChainState): Promise<ReadMsg | undefined> {
    const m = await this.#read(`last message of ${st.chain}`, () =>
      this.#jsm.streams.getMessage(this.stream, { last_by_subj: st.subject }),
    );
    return m ? this.#fromStored(m) : undefined;
  }

  /** The first message of `subject` at or after stream seq `seq` (from the leader). */
  async #nextMessage(subject: string, seq: number): Promise<ReadMsg | undefined> {
    // STREAM.MSG.GET takes next_by_subj on 2.9 too; the client's type only lists seq / last_by_subj
    const query = { seq, next_by_subj: subject } as unknown as MsgRequest;
    const m = await this.#read(`message of ${subject} after ${seq}`, () => this.#jsm.streams.getMessage(this.stream, query));
    return m ? this.#fromStored(m) : undefined;
  }

  async #messageAt(subject: string, seq: number): Promise<ReadMsg | undefined> {
    const m = await this.#read(`stream seq ${seq}`, () => this.#jsm.streams.getMessage(this.stream, { seq }));
    return m && m.subject === subject ? this.#fromStored(m) : undefined;
  }

  #fromStored(m: StoredMsg): ReadMsg {
    let raw: unknown;
    try {
      raw = m.json<unknown>();
    } catch {
      raw = undefined;
    }
    return { streamSeq: m.seq, body: this.#parse(m.subject, m.seq, raw) };
  }

  #parse(subject: string, streamSeq: number, raw: unknown): TurnMessage {
    const body = parseBody(raw);
    if (!body) {
      const chain = subject.slice(this.#prefix.length + 1).replace('.', '/');
      throw new JournalBrokenError(chain, 0, 'hash', `the message at stream seq ${streamSeq} is not a journal message`, [streamSeq]);
    }
    return body;
  }

  /** Runs a read, retrying while a stream has no leader (bounded by `readRetryMs`). */
  async #read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#readRetryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!isTransient(e) || Date.now() >= deadline || this.#nc.isClosed() || this.#closing) throw e;
        this.#log.debug({ what, attempt, err: ensureError(e).message }, 'read failed; retrying');
        await this.#sleep(Math.min(100 * 2 ** attempt, 1000));
      }
    }
  }

  #wrap(e: unknown, what: string, subject: string): Error {
    const err = ensureError(e);
    if (err instanceof IceError) return err;
    if (err.name === 'TimeoutError') return new TimeoutError(subject, this.#timeoutMs);
    if (isTransient(err)) return new NoRespondersError(subject); // the stream had no leader throughout
    return new JournalError(`${what} failed: ${err.message}`, { cause: err });
  }

  // -------------------------------------------------------------------------------------------
  // queries

  /** Where the chain ends, counting turns handed to `commit()` that are not yet durable. */
  async head(chain: string): Promise<ChainHead> {
    const st = this.#chain(chain);
    if (st.projected) return { ...st.projected };
    if (st.pos) return { ...st.pos.head };
    const last = await this.#lastMessage(st);
    return last ? headOf(last.body) : { ...EMPTY_HEAD };
  }

  async latestSnapshot(actor: string): Promise<SnapshotRecord | undefined> {
    const st = this.#chain(actor);
    const last = await this.#lastMessage(st);
    if (last?.body.snapshot) return last.body.snapshot;
    // the last turn carried none (not expected for an actor): the recorded one, if any
    const e = await this.#read(`snapshot record of ${actor}`, () => this.#snapshots.get(st.cacheKey));
    const rec = e && e.operation === 'PUT' ? parseCache(e.json<unknown>()) : undefined;
    return rec && isCachedSnapshot(rec) ? stripCache(rec) : undefined;
  }

  async outcome(intentId: string): Promise<StoredOutcome | undefined> {
    const mine = this.#unwrittenOutcomes.get(intentId);
    if (mine) return mine.value;
    const e = await this.#read(`outcome of ${intentId}`, () => this.#outcomes.get(intentKey(intentId)));
    if (!e || e.operation !== 'PUT') return this.#unwrittenOutcomes.get(intentId)?.value;
    return e.json<StoredOutcome>();
  }

  async pending(intentId?: string): Promise<PendingRecord[]> {
    if (intentId !== undefined) {
      const mine = this.#unwrittenPending.get(intentId);
      if (mine) return mine.value ? [mine.value] : [];
      const e = await this.#read(`pending ${intentId}`, () => this.#pending.get(intentKey(intentId)));
      return e && e.operation === 'PUT' ? [e.json<PendingRecord>()] : [];
    }
    // This store's writes queued when the scan starts: one that lands during the scan may have
    // been read before it landed, so they are applied over the scan, then the ones still queued.
    const queued = [...this.#unwrittenPending];
    const byId = new Map<string, PendingRecord>();
    for (const v of (await this.#scanBucket(this.#pending, PENDING)).values()) {
      const r = v as PendingRecord;
      byId.set(r.intentId, r);
    }
    for (const [id, { value }] of [...queued, ...this.#unwrittenPending]) {
      if (value) byId.set(id, value);
      else byId.delete(id);
    }
    return [...byId.values()].sort((a, b) =>
      a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.intentId < b.intentId ? -1 : 1,
    );
  }

  async actors(): Promise<ActorIndexRow[]> {
    const rows = new Map<string, ActorIndexRow>();
    const add = (s: SnapshotRecord) => rows.set(s.actor, { actor: s.actor, kind: s.kind, seq: s.seq, status: s.status, state: s.state });
    const queued = [...this.#unwrittenSnapshots]; // as in pending(): a write landing during the scan
    for (const v of (await this.#scanBucket(this.#snapshots, SNAPSHOTS)).values()) {
      const rec = parseCache(v);
      if (rec && isCachedSnapshot(rec) && !isRuntimeChain(rec.actor)) add(rec);
    }
    for (const [chain, { value }] of [...queued, ...this.#unwrittenSnapshots]) {
      if (!isRuntimeChain(chain) && (rows.get(chain)?.seq ?? -1) < value.seq) add(value);
    }
    return [...rows.values()].sort((a, b) => (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0));
  }

  async #putWakeup(st: ChainState, at: number): Promise<void> {
    await this.#wakeups.put(st.cacheKey, JSON.stringify({ actor: st.chain, at }));
    st.wakeIndexed = at;
  }

  async #deleteWakeup(st: ChainState): Promise<void> {
    if (st.wakeIndexed !== null) await this.#wakeups.delete(st.cacheKey);
    st.wakeIndexed = null;
  }

  /**
   * Actors that need waking by `before`, from ICE_WAKEUPS (one key per actor with timers or a
   * restart). Reads every key of that bucket: its size is the number of actors with something
   * pending, not the number of actors.
   */
  async wakeups(before: number, limit: number): Promise<Array<{ actor: string; dueAt: number }>> {
    const out: Array<{ actor: string; dueAt: number }> = [];
    for (const v of (await this.#scanBucket(this.#wakeups, WAKEUPS)).values()) {
      const { actor, at } = (v ?? {}) as { actor?: unknown; at?: unknown };
      if (typeof actor === 'string' && typeof at === 'number' && at <= before) out.push({ actor, dueAt: at });
    }
    return out.sort((a, b) => a.dueAt - b.dueAt || (a.actor < b.actor ? -1 : 1)).slice(0, limit);
  }

  async timers(limit: number): Promise<SnapshotRecord[]> {
    const due = await this.wakeups(Number.MAX_SAFE_INTEGER, limit);
    const recs: Array<SnapshotRecord | undefined> = [];
    // 64 reads in flight at most, as a page of actors reads them
    for (let i = 0; i < due.length; i += 64)
      recs.push(...(await Promise.all(due.slice(i, i + 64).map((w) => this.latestSnapshot(w.actor)))));
    // as SQLite's join of its index with the snapshots: every indexed actor's record
    return recs.filter((r): r is SnapshotRecord => r !== undefined);
  }

  /**
   * One page of the actor index (src/host/actor-page.ts). What it costs, honestly:
   * - the keys: the snapshots bucket's stream info names every key (the server answers in
   *   pages of 100,000 subjects; the client follows them), sorted here. That is O(actors)
   *   on the server, the wire and this process, whatever the page's limit: a KV has no
   *   ordered range read. A first page lists them; the pages that continue it within
   *   KEY_LISTING_REUSE_MS reuse that listing (see #listedAddresses).
   * - the values: only the page's, one get each (64 in flight). A kind filter is a subject
   *   filter on the server (keys are `kind.id`), so it costs keys of that kind only. A status
   *   or state filter needs each candidate's value: values are read in address order until
   *   the page is full, so a filter that matches few actors reads up to every value after
   *   the cursor.
   * Rows come from the recorded snapshots (ICE_SNAPSHOTS), which may be behind the journal
   * by the derived writes in flight; this store's own unwritten ones are counted.
   */
  async actorsPage(q: ActorPageQuery): Promise<ActorPage<ActorIndexRow>> {
    const ordered = await this.#listedAddresses(q.kind, q.after !== undefined);
    // the first address after the cursor
    let lo = 0;
    for (let hi = ordered.length, after = q.after ?? ''; lo < hi;) {
      const mid = (lo + hi) >>> 1;
      if (ordered[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    const filtered = q.status !== undefined || q.state !== undefined;
    const rows: ActorIndexRow[] = [];
    for (let i = lo; i < ordered.length && rows.length <= q.limit;) {
      const batch = ordered.slice(i, i + (filtered ? 64 : Math.min(64, q.limit + 1 - rows.length)));
      i += batch.length;
      const found = await Promise.all(batch.map((a) => this.#indexRow(a)));
      for (const r of found) {
        if (!r || !matchesActorPage(r, q)) continue;
        rows.push(r);
        if (rows.length > q.limit) break;
      }
    }
    if (rows.length <= q.limit) return { rows };
    rows.length = q.limit;
    return { rows, next: rows[rows.length - 1]!.actor };
  }

  /**
   * Every actor address (of one kind) with a snapshot record, sorted: the bucket's keys and
   * this store's unwritten records. A first page lists them anew; a continuation reuses the
   * listing while it was completed or last used less than KEY_LISTING_REUSE_MS ago, so paging
   * through N actors costs one key listing, not one per page. It still holds every actor that
   * existed when the listing began, which is what a continuation promises; an actor created
   * through this store since drops the listings, one created through another node shows in
   * this node's continuations once no page has used the listing for KEY_LISTING_REUSE_MS.
   */
  async #listedAddresses(kind: string | undefined, continuation: boolean): Promise<string[]> {
    const k = kind ?? '';
    const t = Date.now();
    for (const [key, l] of this.#keyListings) if (t - l.at >= KEY_LISTING_REUSE_MS) this.#keyListings.delete(key);
    const reuse = this.#keyListings.get(k);
    if (continuation && reuse) {
      reuse.at = t; // a listing being paged through stays: one key listing per walk, however long
      return reuse.addresses;
    }
    const prefix = `$KV.${SNAPSHOTS}.`;
    const filter = kind !== undefined ? `${prefix}${kind}.>` : `${prefix}>`;
    const queued = [...this.#unwrittenSnapshots.keys()]; // as in pending(): a write landing during the listing
    // Each response names up to 100,000 keys and the server walks the bucket for each: at a
    // million keys one takes seconds, past the store's request timeout.
    this.#listingJsm ??= jetstreamManager(this.#nc, { timeout: Math.max(this.#timeoutMs, KEY_LISTING_TIMEOUT_MS) }).catch((e: unknown) => {
      this.#listingJsm = undefined;
      throw ensureError(e);
    });
    const jsm = await this.#listingJsm;
    const si = await this.#read(`keys of ${SNAPSHOTS}`, () => jsm.streams.info(`KV_${SNAPSHOTS}`, { subjects_filter: filter }));
    const addresses = new Set<string>();
    const consider = (address: string) => {
      if (!isRuntimeChain(address) && (kind === undefined || address.startsWith(`${kind}/`))) addresses.add(address);
    };
    for (const subject of Object.keys(si.state.subjects ?? {})) {
      const key = subject.slice(prefix.length);
      const dot = key.indexOf('.');
      if (dot > 0) consider(`${key.slice(0, dot)}/${key.slice(dot + 1)}`);
    }
    for (const chain of [...queued, ...this.#unwrittenSnapshots.keys()]) consider(chain);
    const ordered = [...addresses].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // the window starts when the listing is complete: at a million keys it takes a minute
    this.#keyListings.set(k, { at: Date.now(), addresses: ordered });
    return ordered;
  }

  /** An actor's row from its recorded snapshot, or this store's newer unwritten one. */
  async #indexRow(address: string): Promise<ActorIndexRow | undefined> {
    const e = await this.#read(`snapshot record of ${address}`, () => this.#snapshots.get(address.replace('/', '.')));
    const rec = e && e.operation === 'PUT' ? parseCache(e.json<unknown>()) : undefined;
    let s: SnapshotRecord | undefined = rec && isCachedSnapshot(rec) ? rec : undefined;
    const mine = this.#unwrittenSnapshots.get(address)?.value;
    if (mine && (s === undefined || s.seq < mine.seq)) s = mine;
    return s && { actor: s.actor, kind: s.kind, seq: s.seq, status: s.status, state: s.state };
  }

  /** Always `[]`: cluster grant records live in ICE_GRANTS (src/cluster/cluster-grants.ts). */
  grants(): Promise<Grant[]> {
    return Promise.resolve([]);
  }

  async chainFacts(chain: string, fromSeq: number, limit: number): Promise<Fact[]> {
    const st = this.#chain(chain);
    if (limit <= 0) return [];
    const last = await this.#lastMessage(st);
    if (!last || headOf(last.body).seq < fromSeq) return [];
    // start after the recorded position when it lies before fromSeq (a hint, checked below)
    const e = await this.#read(`snapshot record of ${chain}`, () => this.#snapshots.get(st.cacheKey));
    const cache = e && e.operation === 'PUT' ? parseCache(e.json<unknown>()) : undefined;
    const collect = async (from: number): Promise<Fact[] | undefined> => {
      const out: Fact[] = [];
      let first = true;
      let next = 0;
      for await (const m of this.#scan(st.subject, from, last.streamSeq, last)) {
        if (first && from > 1 && m.body.facts[0]!.seq > fromSeq) return undefined; // the hint was wrong
        first = false;
        if (m.body.facts[0]!.seq < next) continue; // an orphan: first at a position wins
        next = lastOf(m.body.facts).seq + 1;
        for (const f of m.body.facts) {
          if (f.seq >= fromSeq) out.push(f);
          if (out.length >= limit) return out;
        }
      }
      return out;
    };
    const hinted = cache && cache.seq < fromSeq && cache.streamSeq < last.streamSeq ? await collect(cache.streamSeq + 1) : undefined;
    return hinted ?? (await collect(1)) ?? [];
  }

  /** Resolves when every commit and derived write handed over so far is settled. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#commits]);
    await Promise.all([...this.#derivedOpen]);
  }

  /**
   * Drains, then stops: derived writes that fail from now on are not retried (what they
   * leave out lies after the recorded positions, so the next `load` re-creates it).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#commits]);
    this.#closing = true;
    this.#stop.abort();
    await this.drain();
  }

  /**
   * Publishes a message on a chain without any fence (no expected sequence, no msgID) and
   * without touching this store's state. For tests that fabricate forks and gaps.
   * @internal
   */
  async unsafePublishRaw(chain: string, body: unknown): Promise<number> {
    const ack = await this.#js.publish(this.#subjectOf(chain), JSON.stringify(body));
    return ack.seq;
  }

  // -------------------------------------------------------------------------------------------
  // helpers

  #subjectOf(chain: string): string {
    const i = chain.indexOf('/');
    const kind = chain.slice(0, i);
    const id = chain.slice(i + 1);
    if (i <= 0 || !TOKEN_RE.test(kind) || !TOKEN_RE.test(id)) {
      throw new ValidationError(`not a chain address: ${JSON.stringify(chain)}`, [
        { path: 'chain', code: 'invalid_chain', message: 'expected "kind/id" with subject-safe tokens', expected: 'kind/id' },
      ]);
    }
    return `${this.#prefix}.${kind}.${id}`;
  }

  #chain(chain: string): ChainState {
    let st = this.#chains.get(chain);
    if (!st) {
      const subject = this.#subjectOf(chain);
      st = {
        chain,
        subject,
        cacheKey: chain.replace('/', '.'),
        pos: undefined,
        projected: undefined,
        unsettled: 0,
        covered: false,
        epoch: 0,
        failure: undefined,
        tail: Promise.resolve(),
        derived: [],
        worker: undefined,
        cacheRevision: undefined,
        recordedSeq: 0,
        fresh: true,
        wakeIndexed: undefined,
      };
      this.#chains.set(chain, st);
    }
    return st;
  }

  /**
   * Last value of every key of a bucket: the subjects from stream info, then a get each (from
   * the leader). No consumer: a last-per-subject consumer counts a value that is replaced
   * before delivery in `num_pending` and never reports the end.
   */
  async #scanBucket(kv: KV, bucket: string): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    const prefix = `$KV.${bucket}.`;
    const si = await this.#read(`keys of ${bucket}`, () => this.#jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` }));
    const keys = Object.keys(si.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(
        keys.slice(i, i + 64).map(async (key) => {
          const e = await this.#read(`${bucket} ${key}`, () => kv.get(key));
          if (!e || e.operation !== 'PUT') return;
          try {
            out.set(key, e.json<unknown>());
          } catch {
            // not JSON: not ours
          }
        }),
      );
    }
    return out;
  }
}

/** A turn's facts must chain onto `after` and onto each other. */
function checkTurnLinks(turn: Turn): void {
  let head = turn.after;
  for (const f of turn.facts) {
    if (f.seq !== head.seq + 1 || f.prev !== head.hash) {
      throw new JournalError(`the facts of a turn of ${turn.chain} do not chain: seq ${f.seq} after seq ${head.seq}`);
    }
    head = { seq: f.seq, hash: f.hash };
  }
}

/**
 * The journal message of a turn, `{ v, chain, facts, snapshot?, outcome?, pendingPut?,
 * pendingDelete?, grants? }`. With `turn.bodies` (the hashed text of each fact) the facts are
 * not serialized again: a fact's JSON is its body's text with `prev` and `hash` appended.
 */
function encodeTurn(turn: Turn): string {
  const bodies = turn.bodies;
  const facts =
    bodies && bodies.length === turn.facts.length && bodies.every((b) => b.length > 2 && b.endsWith('}'))
      ? `[${turn.facts.map((f, i) => `${bodies[i]!.slice(0, -1)},"prev":${JSON.stringify(f.prev)},"hash":${JSON.stringify(f.hash)}}`).join(',')}]`
      : JSON.stringify(turn.facts);
  let out = `{"v":1,"chain":${JSON.stringify(turn.chain)},"facts":${facts}`;
  if (turn.snapshot !== undefined) out += `,"snapshot":${JSON.stringify(turn.snapshot)}`;
  if (turn.outcome !== undefined) out += `,"outcome":${JSON.stringify(turn.outcome)}`;
  if (turn.pendingPut !== undefined) out += `,"pendingPut":${JSON.stringify(turn.pendingPut)}`;
  if (turn.pendingDelete !== undefined) out += `,"pendingDelete":${JSON.stringify(turn.pendingDelete)}`;
  if (turn.grants !== undefined) out += `,"grants":${JSON.stringify(turn.grants)}`;
  if (turn.attestation !== undefined) out += `,"attestation":${JSON.stringify(turn.attestation)}`;
  return `${out}}`;
}
