import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { JournalError, ValidationError, ensureError } from '../../errors.js';
import type { ChainHead } from '../../host/ports.js';
import {
  VERIFY_SQL,
  stopWorker,
  type Checkpoint,
  type RawCheckpointRow,
  type RawFactRow,
  type SqliteStore,
  type StoredFactRow,
} from './sqlite-store.js';

/**
 * Verification of the embedded store: every chain link by link, and the signed checkpoints.
 *
 * What a verification covers, and how it reads:
 * - It covers the facts with `fromPos < pos ≤ upTo`, where `upTo` is the newest position when
 *   it starts. Facts appended while it runs are not part of it (the next verification sees
 *   them); the checkpoints it checks are those with `pos ≤ upTo`, which were written in the
 *   same transactions as those facts.
 * - It reads in ranges of positions (`chunkRows`, default {@link VERIFY_CHUNK_ROWS}), each one
 *   statement and so one short read transaction: nothing stays open between ranges, so the
 *   node can checkpoint and reset its WAL while a long verification runs. Checkpoints are
 *   read by the same ranges, never all at once.
 * - A range is checked on its own (verify-checks.cjs: each row's hash over its stored prev
 *   and body, its index columns, the links inside the range, the checkpoints in it) and then
 *   stitched onto where each chain stood before it. That lets worker threads check ranges in
 *   parallel ({@link verifyStoreInWorkers}); a range found wrong is re-read and checked row by
 *   row from where the chains stood, which names the first broken fact exactly as a single
 *   pass would.
 * - What is reported first: the first broken fact in write order; if every fact holds, the
 *   first checkpoint in write order that does not link, or names a fact that is missing or
 *   has another hash; then the newest checkpoint's signature.
 *
 * From a position (`fromPos`, the start-up check): the facts at or before it are trusted as
 * verified already. A chain's first fact after it continues the stored fact just before it
 * in that chain; the first checkpoint after it continues the newest checkpoint at or before
 * it. A checkpoint may name a trusted fact; it must still exist with the named hash.
 */

/** What a node's check of its journal before serving found (both modes). */
export interface StartCheck {
  /** Positions after this one were checked (0: all of them). */
  fromPos: number;
  result: VerifyResult;
  ms: number;
}

export interface VerifyResult {
  ok: boolean;
  /** Facts checked. */
  count: number;
  /** Chains seen (from a position: the chains with facts after it). */
  chains: number;
  /** Position of the newest fact checked (from a position with nothing after it: that position). */
  lastPos: number;
  /** Checkpoints checked (when a key was given). */
  checkpoints?: number;
  /** Position of the newest checkpoint whose signature verified: every fact up to it is attested. */
  attestedPos?: number;
  /**
   * Turns that claimed a position already taken (cluster: two writers with one expectation,
   * the later one confirmed it lost and acknowledged nothing). Not part of any chain.
   */
  orphans?: OrphanTurn[];
  /** Where it breaks: the chain and seq, and the row position. */
  brokenChain?: string;
  brokenAt?: number;
  brokenPos?: number;
  reason?: string;
}

/**
 * A turn that claimed a position already taken (cluster journal). `kind` says what it is next
 * to the turn that holds the position (`heldBy`, its stream position): `copy` — byte for byte
 * the same message, so the server stored one append twice; `same-facts` — the same facts in
 * another message (the same writer's turn published again); `other-writer` — different facts:
 * a second writer appended at the same position. Without `kind` the holder was not found.
 */
export interface OrphanTurn {
  chain: string;
  seq: number;
  pos: number;
  heldBy?: number;
  kind?: 'copy' | 'same-facts' | 'other-writer';
  /** Key ids of the node signatures on the orphan and on the holder, when the turns carry one. */
  keyId?: string;
  heldByKeyId?: string;
}

export interface VerifyOptions {
  /**
   * Verify only the facts after this position (and the checkpoints after it), trusting
   * everything at or before it as verified already. Default 0: the whole store.
   */
  fromPos?: number;
  /** Positions per read (default {@link VERIFY_CHUNK_ROWS}); each read is one short statement. */
  chunkRows?: number;
}

export interface VerifyInWorkersOptions extends VerifyOptions {
  /** Worker threads (default: up to 4, one per core; 0 checks in this thread). */
  workers?: number;
  /** Below this many facts to check, no workers are started (default 50,000). */
  workersFrom?: number;
}

/** How far a verification has got (see {@link verifyStoreSteps}). */
export interface VerifyProgress {
  /** Facts are checked up to this position. */
  pos: number;
  /** Where this verification ends: the newest position when it started. */
  upTo: number;
  /** Facts checked so far. */
  count: number;
}

/** Default positions per read. */
export const VERIFY_CHUNK_ROWS = 2000;
const WORKERS_FROM = 50_000;
/** Ranges each worker has at a time. */
const AHEAD_PER_WORKER = 2;
/** Summaries checked but not yet stitched, at most. */
const MAX_AHEAD = 32;

/** [chain, first seq, first prev, last seq, last hash] of a chain within one range. */
type ChainSpan = [string, number, string, number, string];
/** [pos, chain, seq, reason] of a checkpoint found wrong. */
type CheckpointBreak = [number, string, number, string];
/** What verify-checks.cjs reports for one range of positions. */
interface RangeSummary {
  count: number;
  lastPos: number;
  broken: boolean;
  chains: ChainSpan[];
  checkpoints: number;
  /** [pos, prev] of the range's first checkpoint. */
  firstCheckpoint: [number, string] | null;
  lastCheckpointHash: string | null;
  checkpointBroken: CheckpointBreak | null;
}
type Lookup = (chain: string, seq: number) => string | undefined;
interface VerifyChecks {
  sha256Hex(text: string): string;
  checkpointHash(prev: string, heads: Checkpoint['heads']): string;
  indexMismatch(
    chain: string,
    seq: number,
    text: string,
    offset: number,
    type: string | undefined,
    actor: string | null | undefined,
    intentId: string | null | undefined,
    at: string | undefined,
  ): string | undefined;
  summarizeRange(rows: RawFactRow[], cps: RawCheckpointRow[], lookup: Lookup): RangeSummary;
  checkCheckpoint(
    cp: RawCheckpointRow,
    prevHash: string | null,
    chains: { get(chain: string): readonly [number, string, number, string] | undefined },
    lookup: Lookup,
  ): CheckpointBreak | undefined;
  REASON: { link(pos: number): string; missing(chain: string, seq: number): string; mismatch: string };
}
const requireHere = createRequire(import.meta.url);
const checks = requireHere('./verify-checks.cjs') as VerifyChecks;

export function checkpointHash(prev: string, heads: Checkpoint['heads']): string {
  return checks.checkpointHash(prev, heads);
}

/**
 * Verifies a store in this thread: every chain, then the checkpoints and the newest
 * signature (see the file comment for what is covered and what is reported first).
 *
 * @example
 * // at start-up: only what was appended since the last verification
 * const r = verifyStore(store, (cp) => key.verifyCheckpoint(cp.hash, cp.sig), { fromPos: verifiedUpTo });
 * if (r.ok) verifiedUpTo = r.lastPos;
 */
export function verifyStore(store: SqliteStore, checkSignature?: (cp: Checkpoint) => boolean, opts: VerifyOptions = {}): VerifyResult {
  const steps = verifyStoreSteps(store, checkSignature, opts);
  for (;;) {
    const s = steps.next();
    if (s.done) return s.value;
  }
}

/**
 * {@link verifyStore} one range at a time: each `next()` reads and checks one range of
 * positions and yields how far it got; the generator's return value is the result. Between
 * two `next()` calls no statement is open.
 */
export function* verifyStoreSteps(
  store: SqliteStore,
  checkSignature?: (cp: Checkpoint) => boolean,
  opts: VerifyOptions = {},
): Generator<VerifyProgress, VerifyResult, void> {
  const v = new StoreVerification(store, checkSignature, opts);
  for (const [from, to] of v.ranges()) {
    if (!v.apply(from, to, v.summarizeHere(from, to))) break;
    yield v.progress();
  }
  return v.finish();
}

/**
 * {@link verifyStore} with the ranges read and checked by worker threads, each with its own
 * read-only connection, and stitched in order here; the event loop stays free meanwhile.
 * Small verifications (below `workersFrom` facts) run in this thread, yielding between
 * ranges. Same result as {@link verifyStore}.
 */
export async function verifyStoreInWorkers(
  store: SqliteStore,
  checkSignature?: (cp: Checkpoint) => boolean,
  opts: VerifyInWorkersOptions = {},
): Promise<VerifyResult> {
  const v = new StoreVerification(store, checkSignature, opts);
  const workers = opts.workers ?? Math.min(4, availableParallelism());
  if (workers < 1 || v.upTo - v.fromPos < (opts.workersFrom ?? WORKERS_FROM)) {
    for (const [from, to] of v.ranges()) {
      if (!v.apply(from, to, v.summarizeHere(from, to))) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return v.finish();
  }
  const pool = new VerifyPool(workers, store.path, checkSignature !== undefined);
  // Each worker keeps AHEAD_PER_WORKER ranges and gets the next one as soon as it answers, so
  // a worker slowed down by other load does not hold the others back; summaries wait here to
  // be stitched in order (at most MAX_AHEAD ranges ahead of the stitching).
  const ranges = v.ranges();
  const pending: Array<{ from: number; to: number; summary: Promise<RangeSummary> }> = [];
  const outstanding = new Array<number>(workers).fill(0);
  let stopped = false;
  const feed = (w: number): void => {
    while (!stopped && outstanding[w]! < AHEAD_PER_WORKER && pending.length < MAX_AHEAD) {
      const r = ranges.next();
      if (r.done) return;
      const [from, to] = r.value;
      outstanding[w]!++;
      const summary = pool.run(w, from, to, v.upTo);
      summary.then(
        () => {
          outstanding[w]!--;
          feed(w);
        },
        () => {}, // awaited in order below
      );
      pending.push({ from, to, summary });
    }
  };
  try {
    for (let w = 0; w < workers; w++) feed(w);
    for (let next = pending.shift(); next; next = pending.shift()) {
      if (!v.apply(next.from, next.to, await next.summary)) break;
      for (let w = 0; w < workers; w++) feed(w);
    }
  } finally {
    stopped = true;
    await pool.close();
  }
  return v.finish();
}

/**
 * The checks of one fact against where its chain stood, in the order a single pass makes
 * them; returns [seq, reason] for the first that fails.
 */
function rowBreak(h: ChainHead, row: StoredFactRow): [number, string] | undefined {
  if (row.seq !== h.seq + 1) return [h.seq + 1, `fact ${h.seq + 1} of ${row.chain} is missing`];
  if (checks.sha256Hex(h.hash + row.body) !== row.hash) return [row.seq, 'hash does not match the fact body and the previous hash'];
  if (row.prev !== h.hash) return [row.seq, 'stored prev does not match the previous hash'];
  const mismatch = checks.indexMismatch(row.chain, row.seq, row.body, 0, row.type, row.actor, row.intent_id, row.at);
  return mismatch === undefined ? undefined : [row.seq, mismatch];
}

/** One verification of a store: where every chain stands, stitched range by range. */
class StoreVerification {
  readonly fromPos: number;
  readonly upTo: number;
  readonly #chunk: number;
  readonly #store: SqliteStore;
  readonly #checkSignature: ((cp: Checkpoint) => boolean) | undefined;
  readonly #heads = new Map<string, ChainHead>();
  readonly #lookup: Lookup;
  #count = 0;
  #lastPos: number;
  #done: number;
  #checkpoints = 0;
  #checkpointPrev: string;
  #checkpointBroken: CheckpointBreak | undefined;
  #broken: VerifyResult | undefined;

  constructor(store: SqliteStore, checkSignature: ((cp: Checkpoint) => boolean) | undefined, opts: VerifyOptions) {
    const fromPos = opts.fromPos ?? 0;
    const chunk = opts.chunkRows ?? VERIFY_CHUNK_ROWS;
    if (!Number.isSafeInteger(fromPos) || fromPos < 0) throw invalid('fromPos', fromPos, 'an integer ≥ 0');
    if (!Number.isSafeInteger(chunk) || chunk < 1) throw invalid('chunkRows', chunk, 'an integer ≥ 1');
    this.#store = store;
    this.#checkSignature = checkSignature;
    this.#chunk = chunk;
    this.fromPos = fromPos;
    this.upTo = store.lastPos();
    this.#lastPos = fromPos;
    this.#done = fromPos;
    this.#checkpointPrev = checkSignature ? (store.lastCheckpoint(fromPos)?.hash ?? '') : '';
    this.#lookup = (chain, seq) => {
      const f = store.factHash(chain, seq);
      return f !== undefined && f.pos <= this.upTo ? f.hash : undefined;
    };
    if (fromPos > this.upTo) {
      this.#broken = {
        ...this.#partial(),
        ok: false,
        brokenChain: '',
        brokenAt: 0,
        brokenPos: fromPos,
        reason: `the journal ends at position ${this.upTo}, before position ${fromPos} that was verified (facts were removed)`,
      };
    }
  }

  /** The ranges of positions to read, `[after, upTo]` each. */
  *ranges(): Generator<[number, number]> {
    if (this.#broken) return;
    for (let from = this.fromPos; from < this.upTo; from += this.#chunk) yield [from, Math.min(this.upTo, from + this.#chunk)];
  }

  progress(): VerifyProgress {
    return { pos: this.#done, upTo: this.upTo, count: this.#count };
  }

  /** Reads and checks one range in this thread. */
  summarizeHere(from: number, to: number): RangeSummary {
    const cps = this.#checkSignature ? this.#store.checkpointRange(from, to) : [];
    return checks.summarizeRange(this.#store.factRange(from, to), cps, this.#lookup);
  }

  /** Stitches the summary of the range `(from, to]` on; false once the store is found broken. */
  apply(from: number, to: number, s: RangeSummary): boolean {
    if (this.#broken) return false;
    let wrong = s.broken;
    for (let i = 0; !wrong && i < s.chains.length; i++) {
      const [chain, firstSeq, firstPrev] = s.chains[i]!;
      const h = this.#heads.get(chain) ?? this.#startOf(chain, firstSeq);
      wrong = h === undefined || firstSeq !== h.seq + 1 || firstPrev !== h.hash;
    }
    if (wrong) return this.#recheck(from, to);
    for (const [chain, , , seq, hash] of s.chains) this.#heads.set(chain, { seq, hash });
    this.#count += s.count;
    if (s.count > 0) this.#lastPos = s.lastPos;
    if (this.#checkSignature && this.#checkpointBroken === undefined && s.firstCheckpoint) {
      const [pos, prev] = s.firstCheckpoint;
      if (prev !== this.#checkpointPrev) this.#checkpointBroken = [pos, '', 0, checks.REASON.link(pos)];
      else if (s.checkpointBroken) this.#checkpointBroken = s.checkpointBroken;
      this.#checkpointPrev = s.lastCheckpointHash ?? this.#checkpointPrev;
    }
    this.#checkpoints += s.checkpoints;
    this.#done = to;
    return true;
  }

  finish(): VerifyResult {
    if (this.#broken) return this.#broken;
    if (!this.#checkSignature) return this.#partial();
    if (this.#checkpointBroken) {
      const [pos, chain, seq, reason] = this.#checkpointBroken;
      return { ...this.#partial(), ok: false, brokenChain: chain, brokenAt: seq, brokenPos: pos, reason };
    }
    // The newest checkpoint attests, through the checkpoint chain, every one before it.
    const last = this.#store.lastCheckpoint(this.upTo);
    if (last && !this.#checkSignature(last)) {
      const reason = 'the newest checkpoint signature does not verify';
      return { ...this.#partial(), ok: false, brokenChain: '', brokenAt: 0, brokenPos: last.pos, reason };
    }
    return { ...this.#partial(), checkpoints: this.#checkpoints, attestedPos: last?.pos ?? 0 };
  }

  #partial(): VerifyResult {
    return { ok: true, count: this.#count, chains: this.#heads.size, lastPos: this.#lastPos };
  }

  /**
   * Where a chain first seen in this verification starts: empty for a whole-store check or a
   * chain's first fact; from a position, the stored fact just before (trusted when it is at
   * or before that position; undefined when there is none).
   */
  #startOf(chain: string, seq: number): ChainHead | undefined {
    if (seq === 1 || this.fromPos === 0) return { seq: 0, hash: '' };
    const f = this.#store.factHash(chain, seq - 1);
    return f !== undefined && f.pos <= this.fromPos ? { seq: seq - 1, hash: f.hash } : undefined;
  }

  /**
   * Checks a range row by row from where the chains stand, as a single pass would (the rows
   * read as objects, each column as stored), with its checkpoints in between: for a range
   * whose summary did not stitch on. Records the first broken fact; true when there is none
   * (the range is then verified as if its summary had stitched).
   */
  #recheck(from: number, to: number): boolean {
    const heads = this.#heads;
    // where each chain stands, as the checkpoint check reads a range's chains: [.., .., seq, hash]
    const byHead = {
      get: (chain: string) => {
        const h = heads.get(chain);
        return h && ([0, '', h.seq, h.hash] as const);
      },
    };
    const cps = this.#checkSignature ? this.#store.checkpointRange(from, to) : [];
    let ci = 0;
    const checkpointsUpTo = (pos: number) => {
      for (; ci < cps.length && cps[ci]![0] <= pos; ci++) {
        const cp = cps[ci]!;
        this.#checkpointBroken ??= checks.checkCheckpoint(cp, this.#checkpointPrev, byHead, this.#lookup);
        this.#checkpointPrev = cp[3];
        this.#checkpoints++;
      }
    };
    const rows = this.#store.factRows(from + 1, to - from);
    for (const row of rows) {
      if (row.pos > to) break;
      checkpointsUpTo(row.pos - 1);
      const h = heads.get(row.chain) ?? this.#startOf(row.chain, row.seq);
      const wrong = h ? rowBreak(h, row) : ([row.seq - 1, `fact ${row.seq - 1} of ${row.chain} is missing`] as const);
      if (wrong) {
        this.#broken = { ...this.#partial(), ok: false, brokenChain: row.chain, brokenAt: wrong[0], brokenPos: row.pos, reason: wrong[1] };
        return false;
      }
      heads.set(row.chain, { seq: row.seq, hash: row.hash });
      this.#count++;
      this.#lastPos = row.pos;
    }
    checkpointsUpTo(to);
    this.#done = to;
    return true;
  }
}

function invalid(path: string, value: unknown, expected: string): ValidationError {
  return new ValidationError(`${path} must be ${expected}`, [{ path, code: 'invalid_value', message: `got ${String(value)}`, expected }]);
}

/** Worker threads that summarize ranges (verify-worker.cjs). */
class VerifyPool {
  readonly #workers: Array<{ worker: Worker; exited: boolean }> = [];
  readonly #pending = new Map<number, { resolve: (s: RangeSummary) => void; reject: (e: Error) => void }>();
  #nextId = 1;

  constructor(n: number, path: string, withCheckpoints: boolean) {
    const workerData = { path, driver: requireHere.resolve('better-sqlite3'), sql: VERIFY_SQL, withCheckpoints };
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./verify-worker.cjs', import.meta.url), { workerData });
      w.on('message', (m: { type: string; id?: number; summary?: RangeSummary; error?: { message: string } }) => {
        if (m.type !== 'summary' || m.id === undefined) return;
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.error) p?.reject(new JournalError(`verify worker: ${m.error.message}`, { cause: m.error }));
        else if (m.summary) p?.resolve(m.summary);
      });
      const entry = { worker: w, exited: false };
      w.on('error', (e) => this.#failAll(e));
      w.on('exit', (code) => {
        entry.exited = true;
        if (code !== 0) this.#failAll(new Error(`verify worker exited with code ${code}`));
      });
      this.#workers.push(entry);
    }
  }

  run(worker: number, from: number, to: number, upTo: number): Promise<RangeSummary> {
    const id = this.#nextId++;
    return new Promise<RangeSummary>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#workers[worker]!.worker.postMessage({ type: 'range', id, from, to, upTo });
    });
  }

  #failAll(e: unknown): void {
    const err = new JournalError('a verify worker stopped', { cause: ensureError(e) });
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map(({ worker, exited }) => (exited ? worker.terminate() : stopWorker(worker))));
    this.#pending.clear();
  }
}
