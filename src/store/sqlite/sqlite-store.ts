import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ConflictError, JournalError } from '../../errors.js';
import type { Fact, Grant, Outcome, SnapshotRecord } from '../../protocol/index.js';
import type { ActorIndexRow, ChainHead, PendingRecord } from '../../host/ports.js';

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
 * - the WAL is checkpointed automatically (SQLite's default 1000 pages) — checkpoints
 *   copy already-durable pages into the main file and never change what is durable.
 * - no read pins the WAL: a long read (verify, export, tail) goes in bounded ranges of
 *   positions, each its own statement and so its own short read transaction. SQLite can only
 *   reset the WAL when no reader still needs its frames; one statement held open across a
 *   whole journal would let `ice.db-wal` grow for as long as it runs.
 */

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
`;

export const SCHEMA_VERSION = 2;

export interface SqliteStoreOptions {
  /** Open for reading only (CLI read commands while a node owns the dir). */
  readonly?: boolean;
}

export class SqliteStore {
  readonly path: string;
  readonly readonly: boolean;
  #db: Database.Database;
  #stmts: ReturnType<SqliteStore['prepare']>;
  #worker: Worker | undefined;
  #nextCommit = 1;
  #commits = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #writerError: Error | undefined;

  constructor(dataDir: string, opts: SqliteStoreOptions = {}) {
    this.readonly = opts.readonly ?? false;
    if (!this.readonly) mkdirSync(dataDir, { recursive: true });
    this.path = join(dataDir, 'ice.db');
    try {
      this.#db = new Database(this.path, { readonly: this.readonly, fileMustExist: this.readonly });
    } catch (e) {
      throw new JournalError(`cannot open store at ${this.path}`, { cause: e });
    }
    this.#db.pragma('busy_timeout = 5000');
    // The version first: an older store must be refused with what to do, before any
    // statement of this version's schema meets its tables.
    const stored = this.#storedVersion();
    if (stored !== undefined && stored !== SCHEMA_VERSION) {
      this.#db.close();
      throw new JournalError(
        `store ${this.path} has schema version ${stored}; this version of ice-runtime reads version ${SCHEMA_VERSION} ` +
          `(per-actor chains). Keep the old data dir with the version that wrote it, or move it aside to start fresh.`,
      );
    }
    if (!this.readonly) {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(SCHEMA);
      if (stored === undefined)
        this.#db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    } else if (stored === undefined) {
      this.#db.close();
      throw new JournalError(`store ${this.path} has no schema (not an ICE store, or never opened for writing)`);
    }
    this.#stmts = this.prepare();
  }

  #storedVersion(): number | undefined {
    const hasMeta = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!hasMeta) return undefined;
    const v = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
    return v ? Number(v.value) : undefined;
  }

  #startWriter(): Worker {
    const w = new Worker(new URL('./commit-worker.cjs', import.meta.url), {
      workerData: { path: this.path, driver: createRequire(import.meta.url).resolve('better-sqlite3') },
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

  private prepare() {
    const db = this.#db;
    const ro = this.readonly;
    const cols = 'pos, chain, seq, body, prev, hash, type, actor, intent_id, at';
    return {
      checkpoints: db.prepare('SELECT pos, heads, prev, hash, key_id AS keyId, sig, at FROM checkpoints ORDER BY pos'),
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
    this.#worker ??= this.#startWriter();
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
      snapshots: batch.snapshots.map((snap) => [snap.actor, snap.kind, snap.seq, snap.status, snap.state, JSON.stringify(snap)]),
      outcomes: batch.outcomes.map((o) => [o.intentId, o.digest, JSON.stringify(o.outcome)]),
      grants: batch.grants.map((g) => [g.id, JSON.stringify(g)]),
      pendingPut: batch.pendingPut.map((p) => [
        p.intentId,
        p.actor,
        JSON.stringify({ intent: p.intent, decision: p.decision }),
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
      const b = JSON.parse(r.body) as { intent: unknown; decision: unknown };
      return { intentId: r.intent_id, actor: r.actor, intent: b.intent, decision: b.decision, createdAt: r.created_at };
    });
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
    const w = this.#worker;
    this.#worker = undefined;
    if (w) {
      w.ref(); // idle writers are unref'd; keep the process alive until this one has closed
      await new Promise<void>((resolve) => {
        w.on('message', (m: { type: string }) => m.type === 'closed' && resolve());
        w.once('exit', () => resolve());
        w.postMessage({ type: 'close' });
      });
      await w.terminate();
    }
    if (this.#db.open) this.#db.close();
  }
}

function parseCheckpoint(row: Omit<Checkpoint, 'heads'> & { heads: string }): Checkpoint {
  return { ...row, heads: JSON.parse(row.heads) as Checkpoint['heads'] };
}
