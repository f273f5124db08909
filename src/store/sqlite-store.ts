import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { JournalError } from '../errors.js';
import type { Fact, Grant, Outcome, SnapshotRecord } from '../protocol/index.js';

/**
 * The embedded store: one SQLite file in WAL mode holding the journal, snapshots, grants,
 * outcomes (the idempotency table) and pending approvals.
 *
 * Invariants enforced here:
 * - `commit()` writes one batch in ONE transaction: the facts of the intents in the batch,
 *   their actors' new snapshots and their outcomes land together or not at all, so a crash
 *   can never leave a snapshot ahead of the journal or behind it.
 * - `synchronous=FULL`: when `commit()` returns, the WAL has been fsynced, so the caller
 *   may acknowledge. Speed comes from batching many intents into one commit (group commit),
 *   never from acknowledging before the fsync.
 * - facts are append-only: nothing here updates or deletes a fact row.
 * - the WAL is checkpointed automatically (SQLite's default 1000 pages) — checkpoints
 *   copy already-durable pages into the main file and never change what is durable.
 */

export interface PendingRecord {
  intentId: string;
  actor: string;
  intent: unknown;
  decision: unknown;
  createdAt: string;
}

export interface Checkpoint {
  seq: number;
  hash: string;
  keyId: string;
  sig: string;
  at: string;
}

export interface CommitBatch {
  /** The authority's signature over the chain head this batch ends at. */
  checkpoint?: Checkpoint;
  facts: Array<{ fact: Fact; body: string }>;
  snapshots: SnapshotRecord[];
  outcomes: Array<{ intentId: string; digest: string; outcome: Outcome }>;
  grants: Grant[];
  pendingPut: PendingRecord[];
  pendingDelete: string[];
}

export interface ActorIndexRow {
  actor: string;
  kind: string;
  seq: number;
  status: SnapshotRecord['status'];
  state: string;
}

export interface StoredFactRow {
  seq: number;
  body: string;
  prev: string;
  hash: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS facts (
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  actor TEXT,
  intent_id TEXT,
  at TEXT NOT NULL,
  body TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS facts_actor ON facts(actor, seq) WHERE actor IS NOT NULL;
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
  seq INTEGER PRIMARY KEY,
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

export const SCHEMA_VERSION = 1;

export interface SqliteStoreOptions {
  /** Open for reading only (CLI read commands while a node owns the dir). */
  readonly?: boolean;
}

export class SqliteStore {
  readonly path: string;
  readonly readonly: boolean;
  #db: Database.Database;
  #stmts: ReturnType<SqliteStore['prepare']>;
  #commitTx: (batch: CommitBatch) => void;

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
    if (!this.readonly) {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(SCHEMA);
      const v = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as
        | { value: string }
        | undefined;
      if (!v) this.#db.prepare('INSERT INTO meta(key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
      else if (Number(v.value) !== SCHEMA_VERSION) {
        throw new JournalError(`store schema version ${v.value} is not supported (expected ${SCHEMA_VERSION})`);
      }
    }
    this.#stmts = this.prepare();
    this.#commitTx = this.readonly
      ? () => {
          throw new JournalError('store is open read-only');
        }
      : this.#db.transaction((batch: CommitBatch) => this.#write(batch));
  }

  private prepare() {
    const db = this.#db;
    const ro = this.readonly;
    return {
      insertFact: ro
        ? undefined
        : db.prepare('INSERT INTO facts(seq, type, actor, intent_id, at, body, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      upsertSnapshot: ro
        ? undefined
        : db.prepare(
            'INSERT INTO snapshots(actor, kind, seq, status, state, body) VALUES (?, ?, ?, ?, ?, ?) ' +
              'ON CONFLICT(actor) DO UPDATE SET seq = excluded.seq, status = excluded.status, state = excluded.state, body = excluded.body',
          ),
      insertOutcome: ro ? undefined : db.prepare('INSERT OR REPLACE INTO outcomes(intent_id, digest, body) VALUES (?, ?, ?)'),
      upsertGrant: ro ? undefined : db.prepare('INSERT OR REPLACE INTO grants(id, body) VALUES (?, ?)'),
      putPending: ro
        ? undefined
        : db.prepare('INSERT OR REPLACE INTO pending(intent_id, actor, body, created_at) VALUES (?, ?, ?, ?)'),
      deletePending: ro ? undefined : db.prepare('DELETE FROM pending WHERE intent_id = ?'),
      insertCheckpoint: ro ? undefined : db.prepare('INSERT OR REPLACE INTO checkpoints(seq, hash, key_id, sig, at) VALUES (?, ?, ?, ?, ?)'),
      checkpoints: db.prepare('SELECT seq, hash, key_id AS keyId, sig, at FROM checkpoints ORDER BY seq'),
      head: db.prepare('SELECT seq, hash FROM facts ORDER BY seq DESC LIMIT 1'),
      factRange: db.prepare('SELECT seq, body, prev, hash FROM facts WHERE seq >= ? ORDER BY seq ASC LIMIT ?'),
      factTail: db.prepare('SELECT seq, body, prev, hash FROM facts WHERE seq < ? ORDER BY seq DESC LIMIT ?'),
      factTailActor: db.prepare(
        'SELECT seq, body, prev, hash FROM facts WHERE actor = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
      ),
      factsOfActorAfter: db.prepare('SELECT seq, body, prev, hash FROM facts WHERE actor = ? AND seq > ? ORDER BY seq ASC'),
      factsOfIntent: db.prepare('SELECT seq, body, prev, hash FROM facts WHERE intent_id = ? ORDER BY seq ASC'),
      factBySeq: db.prepare('SELECT seq, body, prev, hash FROM facts WHERE seq = ?'),
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

  /** Writes one batch atomically and durably (see the file comment). */
  commit(batch: CommitBatch): void {
    this.#commitTx(batch);
  }

  #write(batch: CommitBatch): void {
    const s = this.#stmts;
    for (const { fact, body } of batch.facts) {
      s.insertFact!.run(fact.seq, fact.type, fact.actor ?? null, fact.intentId ?? null, fact.at, body, fact.prev, fact.hash);
    }
    for (const snap of batch.snapshots) {
      s.upsertSnapshot!.run(snap.actor, snap.kind, snap.seq, snap.status, snap.state, JSON.stringify(snap));
    }
    for (const o of batch.outcomes) s.insertOutcome!.run(o.intentId, o.digest, JSON.stringify(o.outcome));
    for (const g of batch.grants) s.upsertGrant!.run(g.id, JSON.stringify(g));
    for (const p of batch.pendingPut) {
      s.putPending!.run(p.intentId, p.actor, JSON.stringify({ intent: p.intent, decision: p.decision }), p.createdAt);
    }
    for (const id of batch.pendingDelete) s.deletePending!.run(id);
    const cp = batch.checkpoint;
    if (cp) s.insertCheckpoint!.run(cp.seq, cp.hash, cp.keyId, cp.sig, cp.at);
  }

  checkpoints(): Checkpoint[] {
    return this.#stmts.checkpoints.all() as Checkpoint[];
  }

  head(): { seq: number; hash: string } {
    const row = this.#stmts.head.get() as { seq: number; hash: string } | undefined;
    return row ?? { seq: 0, hash: '' };
  }

  /** Facts with seq ≥ `fromSeq`, ascending. */
  factRows(fromSeq: number, limit: number): StoredFactRow[] {
    return this.#stmts.factRange.all(fromSeq, limit) as StoredFactRow[];
  }

  /** Iterates every fact row ascending, without loading the journal into memory. */
  *iterateFactRows(fromSeq = 1): Generator<StoredFactRow> {
    yield* this.#stmts.factRange.iterate(fromSeq, Number.MAX_SAFE_INTEGER) as IterableIterator<StoredFactRow>;
  }

  /** Newest first, seq < beforeSeq. */
  tailRows(limit: number, beforeSeq = Number.MAX_SAFE_INTEGER, actor?: string): StoredFactRow[] {
    return (
      actor === undefined
        ? this.#stmts.factTail.all(beforeSeq, limit)
        : this.#stmts.factTailActor.all(actor, beforeSeq, limit)
    ) as StoredFactRow[];
  }

  actorFactRowsAfter(actor: string, afterSeq: number): StoredFactRow[] {
    return this.#stmts.factsOfActorAfter.all(actor, afterSeq) as StoredFactRow[];
  }

  intentFactRows(intentId: string): StoredFactRow[] {
    return this.#stmts.factsOfIntent.all(intentId) as StoredFactRow[];
  }

  factRow(seq: number): StoredFactRow | undefined {
    return this.#stmts.factBySeq.get(seq) as StoredFactRow | undefined;
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
    const rows = (
      intentId === undefined ? this.#stmts.pending.all() : [this.#stmts.pendingOne.get(intentId)].filter(Boolean)
    ) as Array<{ intent_id: string; actor: string; body: string; created_at: string }>;
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

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
