import Database from 'better-sqlite3';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ConflictError, JournalError, StoreDamagedError, ensureError } from '../../errors.js';
import type { Fact, Grant, Outcome, SnapshotRecord } from '../../protocol/index.js';
import type { ActorIndexRow, ChainHead, PendingRecord } from '../../host/ports.js';
import type { ActorPage, ActorPageQuery } from '../../host/actor-page.js';

/**
 * The embedded store: one SQLite file in WAL mode holding the journal, snapshots, grants,
 * outcomes (the idempotency table) and pending approvals.
 *
 * Invariants enforced here:
 * - `commit()` writes one batch in ONE transaction: the facts of the intents in the batch,
 *   their actors' new snapshots and their outcomes land together or not at all, so a crash
 *   can never leave a snapshot ahead of the journal or behind it.
 * - `synchronous=FULL`: when `commit()` resolves, the WAL has been fsynced, so the caller
 *   may acknowledge. Speed comes from batching many intents into one commit (group commit),
 *   never from acknowledging before the fsync.
 * - one writer: commits run in a worker thread (commit-worker.cjs) with its own connection,
 *   one at a time, in the order they were handed over; the fsync never blocks the event
 *   loop. The main thread's connection only reads (WAL readers see every committed batch).
 * - facts are append-only: nothing here updates or deletes a fact row.
 * - facts are chained per chain (an actor, or a runtime chain): `(chain, seq)` is unique,
 *   `pos` is the global write order.
 * - checkpoints never run in a commit: the writer has automatic checkpoints off, and a third
 *   connection in its own thread (checkpoint-worker.cjs) copies the log into the main file
 *   while commits go on. Once everything is copied and no reader needs the log, the next
 *   commit starts it over and truncates it to 64 MiB. Opening for writing checkpoints the
 *   whole log left by the last run and truncates it before anything is served.
 * - no read pins the WAL: a long read (verify, export, tail) goes in bounded ranges of
 *   positions, each its own statement and so its own short read transaction. SQLite can only
 *   reset the WAL when no reader still needs its frames; one statement held open across a
 *   whole journal would let `ice.db-wal` grow for as long as it runs.
 * - a store file is created whole (schema written under a temporary name, then renamed), so
 *   an existing `ice.db` without the schema is damage, never a store to start fresh in.
 */

// URI file names (`file:…?immutable=1`) let read commands open a store in a read-only
// directory. better-sqlite3 reads this once, when its native addon first loads.
process.env.SQLITE_USE_URI ??= '1';

export interface Checkpoint {
  /** Position of the last fact this checkpoint covers. */
  pos: number;
  /** The chain heads this commit left: [chain, seq, hash] for each chain it touched. */
  heads: Array<[string, number, string]>;
  /** Hash of the previous checkpoint ("" before the first). */
  prev: string;
  /** sha256(prev + JSON.stringify(heads)): the checkpoints form a chain of their own. */
  hash: string;
  keyId: string;
  /** The authority's ed25519 signature over `hash`. */
  sig: string;
  at: string;
}

export interface CommitBatch {
  /** The authority's signature over the heads this batch leaves. */
  checkpoint?: Checkpoint;
  facts: Array<{ fact: Fact; body: string; chain: string }>;
  snapshots: SnapshotRecord[];
  outcomes: Array<{ intentId: string; digest: string; outcome: Outcome }>;
  grants: Grant[];
  pendingPut: PendingRecord[];
  pendingDelete: string[];
}

export interface StoredFactRow {
  /** Global write order (not part of a fact; tails and exports follow it). */
  pos: number;
  chain: string;
  seq: number;
  body: string;
  prev: string;
  hash: string;
  /** Index columns (derived from the body; verify checks they still agree with it). */
  type?: string;
  actor?: string | null;
  intent_id?: string | null;
  at?: string;
}

/**
 * A fact row as verification reads it, an array: `prevBody` is the stored prev followed by the
 * body, which is exactly what the row's hash is over; the body starts at `prevLength`.
 * @internal
 */
export type RawFactRow = [
  pos: number,
  chain: string,
  seq: number,
  prevBody: string,
  prevLength: number,
  hash: string,
  type: string,
  actor: string | null,
  intent_id: string | null,
  at: string,
];
/** A checkpoint row as verification reads it (`heads` still JSON text). @internal */
export type RawCheckpointRow = [pos: number, heads: string, prev: string, hash: string];

/**
 * The statements of verification, also prepared by the verify workers on their own
 * connections. Each reads one bounded range of positions.
 * @internal
 */
export const VERIFY_SQL = {
  facts:
    'SELECT pos, chain, seq, prev || body, length(prev), hash, type, actor, intent_id, at FROM facts WHERE pos > ? AND pos <= ? ORDER BY pos',
  checkpoints: 'SELECT pos, heads, prev, hash FROM checkpoints WHERE pos > ? AND pos <= ? ORDER BY pos',
  factHash: 'SELECT hash, pos FROM facts WHERE chain = ? AND seq = ?',
} as const;

/** Distinct states under a state filter up to which a page is merged from one indexed read per state. */
const STATE_MERGE_MAX = 64;

/** Rows per statement of a long read: each is its own short read transaction. */
const READ_CHUNK = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS facts (
  pos INTEGER PRIMARY KEY,
  chain TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  actor TEXT,
  intent_id TEXT,
  at TEXT NOT NULL,
  body TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS facts_chain ON facts(chain, seq);
CREATE INDEX IF NOT EXISTS facts_intent ON facts(intent_id) WHERE intent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshots (
  actor TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  seq INTEGER NOT NULL,
  status TEXT NOT NULL,
  state TEXT NOT NULL,
  body TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS snapshots_status ON snapshots(status, actor);
CREATE INDEX IF NOT EXISTS snapshots_state ON snapshots(state, actor);
CREATE TABLE IF NOT EXISTS outcomes (
  intent_id TEXT PRIMARY KEY,
  digest TEXT NOT NULL,
  body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS grants (
  id TEXT PRIMARY KEY,
  body TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
  pos INTEGER PRIMARY KEY,
  heads TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL,
  key_id TEXT NOT NULL,
  sig TEXT NOT NULL,
  at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS pending (
  intent_id TEXT PRIMARY KEY,
  actor TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS wakeups (
  actor TEXT PRIMARY KEY,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS wakeups_at ON wakeups(at);
CREATE TABLE IF NOT EXISTS policy_sets (
  version INTEGER PRIMARY KEY,
  body TEXT NOT NULL
) STRICT;
`;

export const SCHEMA_VERSION = 2;

export interface SqliteStoreOptions {
  /** Open for reading only (CLI read commands while a node owns the dir). */
  readonly?: boolean;
  /**
   * Write-ahead log size above which `onWal` reports it pinned (a reader holding an old
   * snapshot keeps the checkpointer from resetting it). Default 256 MiB.
   */
  walLimitBytes?: number;
  /**
   * Log size past which the writer finishes copying the log between two commits, so that the
   * next one starts it over; and the size the log file is cut back to then. Default 64 MiB.
   */
  walRestartBytes?: number;
  /** How often the background checkpointer looks at the log (default 200 ms; 0 = never, for tests). */
  checkpointEveryMs?: number;
  /** Called after each background checkpoint that found work, and when the log passes `walLimitBytes`. */
  onWal?: (status: WalStatus) => void;
  /**
   * Called when the background checkpointer fails (once per distinct error) or dies: the log
   * then grows until the writer copies it itself; commits go on.
   */
  onCheckpointError?: (err: Error) => void;
}

/** One background checkpoint: frames in the log, frames copied to the main file, the log's size. */
export interface WalStatus {
  frames: number;
  checkpointed: number;
  walBytes: number;
  /** The log is above `walLimitBytes`: something is pinning it. */
  overLimit: boolean;
}

const DEFAULT_WAL_LIMIT = 256 * 1024 * 1024;
const DEFAULT_WAL_RESTART = 64 * 1024 * 1024;

export class SqliteStore {
  readonly path: string;
  readonly readonly: boolean;
  #db: Database.Database;
  #stmts: ReturnType<SqliteStore['prepare']>;
  readonly #pageStmts = new Map<string, Database.Statement>();
  #nextState: Database.Statement | undefined;
  #worker: Worker | undefined;
  #nextCommit = 1;
  #commits = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #writerError: Error | undefined;
  #checkpointer: Worker | undefined;
  readonly #walLimitBytes: number;
  readonly #onWal: (w: WalStatus) => void;
  readonly #onCheckpointError: (err: Error) => void;
  readonly #checkpointEveryMs: number;
  readonly #walRestartBytes: number;
  /** What opening for writing found and did: the log left by the last run, checkpointed before serving. */
  startup: { walBytes: number; checkpointMs: number; complete: boolean } | undefined;

  constructor(dataDir: string, opts: SqliteStoreOptions = {}) {
    this.readonly = opts.readonly ?? false;
    this.path = join(dataDir, 'ice.db');
    this.#walLimitBytes = opts.walLimitBytes ?? DEFAULT_WAL_LIMIT;
    this.#onWal = opts.onWal ?? (() => {});
    this.#onCheckpointError = opts.onCheckpointError ?? (() => {});
    this.#checkpointEveryMs = opts.checkpointEveryMs ?? 200;
    this.#walRestartBytes = opts.walRestartBytes ?? DEFAULT_WAL_RESTART;
    if (this.readonly) {
      this.#db = openForReading(this.path);
    } else {
      mkdirSync(dataDir, { recursive: true });
      this.#db = openForWriting(this.path);
    }
    try {
      this.#init();
    } catch (e) {
      if (this.#db.open) this.#db.close();
      throw damaged(this.path, e);
    }
    this.#stmts = this.prepare();
  }

  #init(): void {
    this.#db.pragma('busy_timeout = 5000');
    // The version first: an older store must be refused with what to do, before any
    // statement of this version's schema meets its tables.
    const stored = this.#storedVersion();
    if (stored === undefined) {
      // openForWriting creates new stores with their schema; a file without it is not ours.
      throw new StoreDamagedError(
        this.path,
        'the file holds no ICE schema (not an ICE store, or one whose creation never finished)',
        'Pass --data with the right directory, or move the file aside to start a new store there',
      );
    }
    if (stored !== SCHEMA_VERSION) {
      throw new JournalError(
        `store ${this.path} has schema version ${stored}; this version of ice-runtime reads version ${SCHEMA_VERSION} ` +
          `(per-actor chains). Keep the old data dir with the version that wrote it, or move it aside to start fresh.`,
      );
    }
    if (this.readonly) return;
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
    // Before serving: whatever the log holds from the last run goes into the main file now and
    // the log starts empty, so no commit of this run waits on a checkpoint of the last one.
    const walBytes = fileSize(this.path + '-wal');
    const t0 = performance.now();
    const [r] = this.#db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    this.startup = { walBytes, checkpointMs: Math.round(performance.now() - t0), complete: r?.busy === 0 };
  }

  #storedVersion(): number | undefined {
    const hasMeta = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!hasMeta) return undefined;
    const v = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
    return v ? Number(v.value) : undefined;
  }

  #startWriter(): Worker {
    const w = new Worker(new URL('./commit-worker.cjs', import.meta.url), {
      workerData: {
        path: this.path,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        walRestartBytes: this.#walRestartBytes,
      },
    });
    w.on('message', (m: { type: string; id?: number; error?: { message: string; code?: string } }) => {
      if (m.type !== 'done' || m.id === undefined) return;
      const p = this.#commits.get(m.id);
      if (!p) return;
      this.#commits.delete(m.id);
      // Keep the process alive only while a commit is with the writer.
      if (this.#commits.size === 0) w.unref();
      if (m.error?.code === 'SQLITE_CONSTRAINT_UNIQUE' && /facts\.chain, facts\.seq/.test(m.error.message)) {
        // The unique (chain, seq) index is the fence of last resort: a second writer's turn.
        p.reject(new ConflictError(`commit refused: a position is taken already (${m.error.message}); another writer appended`));
      } else if (m.error) p.reject(new JournalError(`commit failed: ${m.error.message}`, { cause: m.error }));
      else p.resolve();
    });
    const fail = (e: Error) => {
      this.#writerError = new JournalError('the store writer stopped; nothing further can be committed', { cause: e });
      for (const p of this.#commits.values()) p.reject(this.#writerError);
      this.#commits.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (code !== 0 || this.#commits.size > 0) fail(new Error(`writer exited with code ${code}`));
    });
    w.unref();
    return w;
  }

  #startCheckpointer(): Worker | undefined {
    if (this.#checkpointEveryMs <= 0) return undefined;
    const w = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), {
      workerData: {
        path: this.path,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        everyMs: this.#checkpointEveryMs,
      },
    });
    let reported = 0;
    let lastError = '';
    w.on('message', (m: { type: string; frames?: number; checkpointed?: number; walBytes?: number; message?: string }) => {
      if (m.type === 'error' && m.message !== lastError) {
        lastError = m.message ?? '';
        this.#onCheckpointError(new JournalError(`background checkpoint failed: ${lastError}`));
      }
      if (m.type !== 'checkpoint') return;
      lastError = '';
      const walBytes = m.walBytes ?? 0;
      // Over the limit: report it, then again each time it has doubled since.
      const overLimit = walBytes > this.#walLimitBytes && walBytes > reported * 2;
      if (overLimit) reported = walBytes;
      if (walBytes <= this.#walLimitBytes) reported = 0;
      this.#onWal({ frames: m.frames ?? 0, checkpointed: m.checkpointed ?? 0, walBytes, overLimit });
    });
    // A checkpointer that dies leaves the log to the writer (commit-worker.cjs); commits go on.
    w.on('error', (err) => this.#onCheckpointError(new JournalError(`the background checkpointer died: ${err.message}`, { cause: err })));
    w.unref();
    return w;
  }

  private prepare() {
    const db = this.#db;
    const ro = this.readonly;
    const cols = 'pos, chain, seq, body, prev, hash, type, actor, intent_id, at';
    return {
      checkpoints: db.prepare('SELECT pos, heads, prev, hash, key_id AS keyId, sig, at FROM checkpoints ORDER BY pos'),
      checkpointsIn: db.prepare(
        'SELECT pos, heads, prev, hash, key_id AS keyId, sig, at FROM checkpoints WHERE pos > ? AND pos <= ? ORDER BY pos',
      ),
      lastCheckpoint: db.prepare(
        'SELECT pos, heads, prev, hash, key_id AS keyId, sig, at FROM checkpoints WHERE pos <= ? ORDER BY pos DESC LIMIT 1',
      ),
      verifyFacts: db.prepare(VERIFY_SQL.facts).raw(),
      verifyCheckpoints: db.prepare(VERIFY_SQL.checkpoints).raw(),
      factHash: db.prepare(VERIFY_SQL.factHash).raw(),
      chainHead: db.prepare('SELECT seq, hash FROM facts WHERE chain = ? ORDER BY seq DESC LIMIT 1'),
      lastPos: db.prepare('SELECT max(pos) AS pos FROM facts'),
      factCount: db.prepare('SELECT count(*) AS n FROM facts'),
      factRange: db.prepare(`SELECT ${cols} FROM facts WHERE pos >= ? ORDER BY pos ASC LIMIT ?`),
      factTail: db.prepare(`SELECT ${cols} FROM facts WHERE pos < ? ORDER BY pos DESC LIMIT ?`),
      factTailChain: db.prepare(`SELECT ${cols} FROM facts WHERE chain = ? AND pos < ? ORDER BY pos DESC LIMIT ?`),
      chainFrom: db.prepare(`SELECT ${cols} FROM facts WHERE chain = ? AND seq >= ? ORDER BY seq ASC LIMIT ?`),
      factsOfIntent: db.prepare(`SELECT ${cols} FROM facts WHERE intent_id = ? ORDER BY pos ASC`),
      factAt: db.prepare(`SELECT ${cols} FROM facts WHERE chain = ? AND seq = ?`),
      snapshot: db.prepare('SELECT body FROM snapshots WHERE actor = ?'),
      actorIndex: db.prepare('SELECT actor, kind, seq, status, state FROM snapshots ORDER BY actor'),
      actorCount: db.prepare('SELECT count(*) AS n FROM snapshots'),
      outcome: db.prepare('SELECT digest, body FROM outcomes WHERE intent_id = ?'),
      grants: db.prepare('SELECT body FROM grants'),
      pending: db.prepare('SELECT intent_id, actor, body, created_at FROM pending ORDER BY created_at'),
      pendingOne: db.prepare('SELECT intent_id, actor, body, created_at FROM pending WHERE intent_id = ?'),
      metaGet: db.prepare('SELECT value FROM meta WHERE key = ?'),
      metaSet: ro ? undefined : db.prepare('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)'),
    };
  }

  /**
   * Writes one batch atomically and durably (see the file comment); resolves after the
   * fsync. Batches are written in the order of the calls.
   */
  commit(batch: CommitBatch): Promise<void> {
    if (this.readonly) return Promise.reject(new JournalError('store is open read-only'));
    if (this.#writerError) return Promise.reject(this.#writerError);
    if (!this.#worker) {
      this.#worker = this.#startWriter();
      this.#checkpointer = this.#startCheckpointer();
    }
    const rows = {
      facts: batch.facts.map(({ fact, body, chain }) => [
        chain,
        fact.seq,
        fact.type,
        fact.actor ?? null,
        fact.intentId ?? null,
        fact.at,
        body,
        fact.prev,
        fact.hash,
      ]),
      snapshots: batch.snapshots.map((snap) => [
        snap.actor,
        snap.kind,
        snap.seq,
        snap.status,
        snap.state,
        JSON.stringify(snap),
        snap.wakeAt ?? null,
      ]),
      outcomes: batch.outcomes.map((o) => [o.intentId, o.digest, JSON.stringify(o.outcome)]),
      grants: batch.grants.map((g) => [g.id, JSON.stringify(g)]),
      pendingPut: batch.pendingPut.map((p) => [
        p.intentId,
        p.actor,
        JSON.stringify({ ...p, intentId: undefined, actor: undefined, createdAt: undefined }),
        p.createdAt,
      ]),
      pendingDelete: batch.pendingDelete,
      checkpoint: batch.checkpoint
        ? [
            batch.checkpoint.pos,
            JSON.stringify(batch.checkpoint.heads),
            batch.checkpoint.prev,
            batch.checkpoint.hash,
            batch.checkpoint.keyId,
            batch.checkpoint.sig,
            batch.checkpoint.at,
          ]
        : null,
    };
    const id = this.#nextCommit++;
    return new Promise<void>((resolve, reject) => {
      if (this.#commits.size === 0) this.#worker!.ref();
      this.#commits.set(id, { resolve, reject });
      this.#worker!.postMessage({ type: 'commit', id, batch: rows });
    });
  }

  /** Every checkpoint, in memory at once: for tests and small stores (verification reads them by range). */
  checkpoints(): Checkpoint[] {
    return (this.#stmts.checkpoints.all() as Array<Omit<Checkpoint, 'heads'> & { heads: string }>).map(parseCheckpoint);
  }

  /** Checkpoints with `afterPos < pos ≤ toPos`, whole (one statement: keep the range short). */
  checkpointsIn(afterPos: number, toPos: number): Checkpoint[] {
    return (this.#stmts.checkpointsIn.all(afterPos, toPos) as Array<Omit<Checkpoint, 'heads'> & { heads: string }>).map(parseCheckpoint);
  }

  /** The newest checkpoint, or the newest at or before position `atOrBefore`. */
  lastCheckpoint(atOrBefore = Number.MAX_SAFE_INTEGER): Checkpoint | undefined {
    const row = this.#stmts.lastCheckpoint.get(atOrBefore) as (Omit<Checkpoint, 'heads'> & { heads: string }) | undefined;
    return row ? parseCheckpoint(row) : undefined;
  }

  /** Fact rows with `afterPos < pos ≤ toPos`, in write order, as verification reads them (one statement: keep the range short). @internal */
  factRange(afterPos: number, toPos: number): RawFactRow[] {
    return this.#stmts.verifyFacts.all(afterPos, toPos) as RawFactRow[];
  }

  /** Checkpoint rows with `afterPos < pos ≤ toPos`, in write order, as arrays (one statement: keep the range short). @internal */
  checkpointRange(afterPos: number, toPos: number): RawCheckpointRow[] {
    return this.#stmts.verifyCheckpoints.all(afterPos, toPos) as RawCheckpointRow[];
  }

  /** The stored hash and position of one fact. */
  factHash(chain: string, seq: number): { hash: string; pos: number } | undefined {
    const row = this.#stmts.factHash.get(chain, seq) as [string, number] | undefined;
    return row ? { hash: row[0], pos: row[1] } : undefined;
  }

  /** Where a chain ends on disk. */
  chainHead(chain: string): ChainHead {
    const row = this.#stmts.chainHead.get(chain) as ChainHead | undefined;
    return row ?? { seq: 0, hash: '' };
  }

  /** Position of the newest fact (0 when empty). */
  lastPos(): number {
    return (this.#stmts.lastPos.get() as { pos: number | null }).pos ?? 0;
  }

  factCount(): number {
    return (this.#stmts.factCount.get() as { n: number }).n;
  }

  /** Facts with pos ≥ `fromPos`, in write order. */
  factRows(fromPos: number, limit: number): StoredFactRow[] {
    return this.#stmts.factRange.all(fromPos, limit) as StoredFactRow[];
  }

  /**
   * Iterates the fact rows from position `fromPos` in write order, without loading the journal
   * into memory and without pinning the WAL: rows are read `chunk` at a time, each read its
   * own statement, so no read transaction stays open while the caller works (SQLite can
   * checkpoint and reset the WAL between chunks). Rows appended meanwhile are included.
   */
  *iterateFactRows(fromPos = 1, chunk = READ_CHUNK): Generator<StoredFactRow> {
    let next = fromPos;
    for (;;) {
      const rows = this.factRows(next, chunk);
      yield* rows;
      const last = rows.at(-1);
      if (!last || rows.length < chunk) return;
      next = last.pos + 1;
    }
  }

  /** Newest first, pos < beforePos, optionally of one chain. */
  tailRows(limit: number, beforePos = Number.MAX_SAFE_INTEGER, chain?: string): StoredFactRow[] {
    return (
      chain === undefined ? this.#stmts.factTail.all(beforePos, limit) : this.#stmts.factTailChain.all(chain, beforePos, limit)
    ) as StoredFactRow[];
  }

  /** Facts of one chain with seq ≥ `fromSeq`, oldest first. */
  chainRows(chain: string, fromSeq: number, limit = Number.MAX_SAFE_INTEGER): StoredFactRow[] {
    return this.#stmts.chainFrom.all(chain, fromSeq, limit) as StoredFactRow[];
  }

  intentFactRows(intentId: string): StoredFactRow[] {
    return this.#stmts.factsOfIntent.all(intentId) as StoredFactRow[];
  }

  factRow(chain: string, seq: number): StoredFactRow | undefined {
    return this.#stmts.factAt.get(chain, seq) as StoredFactRow | undefined;
  }

  snapshot(actor: string): SnapshotRecord | undefined {
    const row = this.#stmts.snapshot.get(actor) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as SnapshotRecord) : undefined;
  }

  actorIndex(): ActorIndexRow[] {
    return this.#stmts.actorIndex.all() as ActorIndexRow[];
  }

  /**
   * Actors that need waking (a durable timer, a restart) by `before` (epoch ms), earliest first.
   * A store written before wake-ups were indexed has none.
   */
  wakeups(before: number, limit: number): Array<{ actor: string; dueAt: number }> {
    const st = this.#wakeupStmt();
    return st ? (st.all(before, limit) as Array<{ actor: string; dueAt: number }>) : [];
  }

  /** Snapshot records of actors with pending timers or a restart, earliest wake first. */
  snapshotsToWake(limit: number): SnapshotRecord[] {
    if (!this.#wakeupStmt()) return [];
    this.#toWake ??= this.#db.prepare('SELECT s.body FROM wakeups w JOIN snapshots s ON s.actor = w.actor ORDER BY w.at, w.actor LIMIT ?');
    return (this.#toWake.all(limit) as Array<{ body: string }>).map((r) => JSON.parse(r.body) as SnapshotRecord);
  }

  #wakeups: Database.Statement | null | undefined;
  #toWake: Database.Statement | undefined;
  #wakeupStmt(): Database.Statement | null {
    if (this.#wakeups === undefined) {
      const has = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wakeups'").get();
      this.#wakeups = has ? this.#db.prepare('SELECT actor, at AS dueAt FROM wakeups WHERE at <= ? ORDER BY at LIMIT ?') : null;
    }
    return this.#wakeups;
  }

  /**
   * One page of the actor index (src/host/actor-page.ts), never touching a snapshot body. The
   * address order is the primary key's; a kind is a range of it (`kind/` … `kind0`); a status
   * walks `snapshots_status (status, actor)`. A state filter matches the state and every state
   * nested in it: those states are found by skipping through `snapshots_state (state, actor)`
   * (one `min(state)` probe each; a machine has few), then one statement per state reads its
   * next rows in address order and the lists are merged, so a page never sorts every actor in
   * a state. The indexes are created when a node opens the file: a store written before them
   * is indexed at its next start (until then, read-only listings scan).
   */
  actorPage(q: ActorPageQuery): ActorPage<ActorIndexRow> {
    const after = q.kind !== undefined && (q.after ?? '') < `${q.kind}/` ? `${q.kind}/` : (q.after ?? '');
    const params: Record<string, string | number> = { after, n: q.limit + 1 };
    if (q.kind !== undefined) Object.assign(params, { kind: q.kind, kindEnd: `${q.kind}0` });
    if (q.status !== undefined) params['status'] = q.status;
    let rows: ActorIndexRow[];
    const states = q.state === undefined ? undefined : this.#statesUnder(q.state);
    if (states === undefined) rows = this.#pageStmt(q, 'none').all(params) as ActorIndexRow[];
    else if (states.length > STATE_MERGE_MAX) {
      const range = { state: q.state!, stateDot: `${q.state}.`, stateEnd: `${q.state}/` };
      rows = this.#pageStmt(q, 'tree').all({ ...params, ...range }) as ActorIndexRow[];
    } else {
      const stmt = this.#pageStmt(q, 'one');
      rows = states.flatMap((state) => stmt.all({ ...params, state }) as ActorIndexRow[]);
      rows.sort((x, y) => (x.actor < y.actor ? -1 : x.actor > y.actor ? 1 : 0));
      if (rows.length > q.limit + 1) rows.length = q.limit + 1;
    }
    if (rows.length <= q.limit) return { rows };
    rows.length = q.limit;
    return { rows, next: rows[rows.length - 1]!.actor };
  }

  /** The page statement for the filters given; `state`: none, one state, or a state and those nested in it. */
  #pageStmt(q: ActorPageQuery, state: 'none' | 'one' | 'tree'): Database.Statement {
    const shape = `${q.kind !== undefined ? 'k' : ''}${q.status !== undefined ? 's' : ''}${state}`;
    let stmt = this.#pageStmts.get(shape);
    if (!stmt) {
      const where = ['actor > @after', "substr(actor, 1, 9) <> '_runtime/'"];
      if (q.kind !== undefined) where.push('actor < @kindEnd', 'kind = @kind');
      if (q.status !== undefined) where.push('status = @status');
      if (state === 'one') where.push('state = @state');
      // `x.` < state < `x/` is "starts with `x.`" ('/' follows '.')
      if (state === 'tree') where.push('(state = @state OR (state > @stateDot AND state < @stateEnd))');
      stmt = this.#db.prepare(`SELECT actor, kind, seq, status, state FROM snapshots WHERE ${where.join(' AND ')} ORDER BY actor LIMIT @n`);
      this.#pageStmts.set(shape, stmt);
    }
    return stmt;
  }

  /** `state` and the stored states nested in it, up to STATE_MERGE_MAX + 1 of them. */
  #statesUnder(state: string): string[] {
    const out = [state];
    const next = (this.#nextState ??= this.#db.prepare('SELECT min(state) AS s FROM snapshots WHERE state > ? AND state < ?'));
    for (let cur = `${state}.`; out.length <= STATE_MERGE_MAX;) {
      const s = (next.get(cur, `${state}/`) as { s: string | null }).s;
      if (s === null) break;
      out.push(s);
      cur = s;
    }
    return out;
  }

  actorCount(): number {
    return (this.#stmts.actorCount.get() as { n: number }).n;
  }

  outcome(intentId: string): { digest: string; outcome: Outcome } | undefined {
    const row = this.#stmts.outcome.get(intentId) as { digest: string; body: string } | undefined;
    return row ? { digest: row.digest, outcome: JSON.parse(row.body) as Outcome } : undefined;
  }

  grants(): Grant[] {
    return (this.#stmts.grants.all() as Array<{ body: string }>).map((r) => JSON.parse(r.body) as Grant);
  }

  pending(intentId?: string): PendingRecord[] {
    const rows = (intentId === undefined ? this.#stmts.pending.all() : [this.#stmts.pendingOne.get(intentId)].filter(Boolean)) as Array<{
      intent_id: string;
      actor: string;
      body: string;
      created_at: string;
    }>;
    return rows.map((r) => {
      // The body holds every field but the three with columns (intent and decision, and since
      // quorums the requirement, deadline, approvals so far and the pending decision's seq).
      const b = JSON.parse(r.body) as Omit<PendingRecord, 'intentId' | 'actor' | 'createdAt'>;
      return { ...b, intentId: r.intent_id, actor: r.actor, createdAt: r.created_at };
    });
  }

  /** Every applied policy set version (JSON records), oldest first; none in a store older than the table. */
  policySets(): unknown[] {
    const has = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'policy_sets'").get();
    if (!has) return [];
    return (this.#db.prepare('SELECT body FROM policy_sets ORDER BY version').all() as Array<{ body: string }>).map(
      (r) => JSON.parse(r.body) as unknown,
    );
  }

  /** Stores a policy set version. @throws ConflictError when that version exists. */
  putPolicySet(version: number, record: unknown): void {
    if (this.readonly) throw new JournalError('store is open read-only');
    try {
      this.#db.prepare('INSERT INTO policy_sets (version, body) VALUES (?, ?)').run(version, JSON.stringify(record));
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new ConflictError(`policy set version ${version} exists`);
      throw e;
    }
  }

  meta(key: string): string | undefined {
    return (this.#stmts.metaGet.get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.#stmts.metaSet!.run(key, value);
  }

  /** Test and tooling hook: raw SQL against the store (used by tamper tests and `ice doctor`). */
  /** @internal */
  unsafeExec(sql: string, ...params: unknown[]): void {
    this.#db.prepare(sql).run(...params);
  }

  /** Waits for the writer to finish what it was given, then closes both connections. */
  async close(): Promise<void> {
    const cp = this.#checkpointer;
    this.#checkpointer = undefined;
    if (cp) await stopWorker(cp);
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await stopWorker(w); // idle workers are unref'd: stopWorker keeps the process alive until closed
    if (this.#db.open) this.#db.close();
  }
}

/** Asks a store worker to close its connection, waits until it has (or exited), then ends it. */
export async function stopWorker(w: Worker): Promise<void> {
  w.ref();
  await new Promise<void>((resolve) => {
    w.on('message', (m: { type: string }) => m.type === 'closed' && resolve());
    w.once('exit', () => resolve());
    w.postMessage({ type: 'close' });
  });
  await w.terminate();
}

function parseCheckpoint(row: Omit<Checkpoint, 'heads'> & { heads: string }): Checkpoint {
  return { ...row, heads: JSON.parse(row.heads) as Checkpoint['heads'] };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const RECOVER =
  'Stop any node on it and keep the file for inspection; restore ice.db (with ice.db-wal, if there is one) from a backup, ' +
  'or salvage what is readable with `sqlite3 ice.db .recover | sqlite3 recovered.db`, then run `ice journal verify`';

/** Wraps what SQLite says about a damaged file so that the file, the problem and the way out are named. */
function damaged(path: string, e: unknown): Error {
  if (e instanceof StoreDamagedError || e instanceof JournalError) return e;
  const err = ensureError(e) as Error & { code?: string };
  const code = err.code ?? '';
  if (code === 'SQLITE_NOTADB') return new StoreDamagedError(path, `it is not a database file (${err.message})`, RECOVER, { cause: err });
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_IOERR_SHORT_READ')
    return new StoreDamagedError(path, `the file is corrupt or truncated (${err.message})`, RECOVER, { cause: err });
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM')
    return new StoreDamagedError(
      path,
      `it cannot be opened for writing (${err.message})`,
      'A serving node needs write access to the data dir and its files; read commands (actors ls, journal verify, …) work without it',
      { cause: err },
    );
  return new StoreDamagedError(path, `it cannot be opened (${code ? `${code}: ` : ''}${err.message})`, RECOVER, { cause: err });
}

/**
 * Opens a store for a serving node. A missing file is created whole: the schema is written
 * under a temporary name and renamed into place, so a crash never leaves a half-made store.
 * An existing file is never replaced, whatever state it is in.
 */
function openForWriting(path: string): Database.Database {
  if (!existsSync(path)) {
    if (fileSize(path + '-wal') > 0)
      throw new StoreDamagedError(
        path,
        'the file is missing but its write-ahead log ice.db-wal is there (the log holds recent commits and is useless without the file)',
        'Restore ice.db from where it went (or a backup); do not delete the log',
      );
    const tmp = path + '.new';
    for (const f of [tmp, tmp + '-wal', tmp + '-shm']) rmSync(f, { force: true });
    const db = new Database(tmp);
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA);
    db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    db.close(); // checkpoints and removes the log: everything is in the file
    renameSync(tmp, path);
  } else if (fileSize(path) === 0) {
    throw new StoreDamagedError(
      path,
      'the file is empty (0 bytes) but stores are never created empty: its contents were lost',
      'Restore ice.db from a backup; to start a new store on purpose, delete the file (and ice.db-wal, if any)',
    );
  }
  try {
    return new Database(path, { fileMustExist: true });
  } catch (e) {
    throw damaged(path, e);
  }
}

/**
 * Opens a store for reading only, without writing anything into the data dir. SQLite needs
 * to create the shared-memory file next to a WAL store; where the directory is read-only and
 * no log is left, the file is opened as immutable (it holds everything committed).
 */
function openForReading(path: string): Database.Database {
  if (!existsSync(path))
    throw new StoreDamagedError(
      path,
      'there is no store file',
      'Pass --data with the directory a node wrote, or run `ice dev` there first',
    );
  if (fileSize(path) === 0) throw new StoreDamagedError(path, 'the file is empty (0 bytes)', 'Restore ice.db from a backup');
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get();
    return db;
  } catch (e) {
    db?.close();
    const code = (e as { code?: string }).code ?? '';
    if (!code.startsWith('SQLITE_READONLY') && !code.startsWith('SQLITE_CANTOPEN')) throw damaged(path, e);
    if (fileSize(path + '-wal') > 0 && !existsSync(path + '-shm'))
      throw new StoreDamagedError(
        path,
        'the directory is read-only and the write-ahead log holds commits not yet in the file, which SQLite cannot read without writing its index next to it',
        'Copy the data dir somewhere writable (`cp -a`) and read the copy',
        { cause: e },
      );
    try {
      return new Database(`file:${path.split('/').map(encodeURIComponent).join('/')}?immutable=1`, { readonly: true });
    } catch (e2) {
      throw damaged(path, e2);
    }
  }
}
