import type { ApprovalEntry, ApprovalRequirement, Fact, Grant, Outcome, SnapshotRecord } from '../protocol/index.js';
import type { ActorPage, ActorPageQuery } from './actor-page.js';

/**
 * The two seams between the one Host and a deployment (docs/design.md, "Ports"):
 *
 * - the **store port**: commit one turn of one chain (its facts, the actor's new snapshot,
 *   the outcome, pending and grant records) atomically and fenced against a second writer;
 *   read a chain back; look up an outcome by intent id; list actors, pending intents, grants.
 *   Implementations: SQLite (`src/store/sqlite/`, group commit) and JetStream
 *   (`src/store/jetstream/`, one message per turn, pipelined across chains).
 * - the **ownership port**: may this process execute for an actor now? Implementations: the
 *   data-dir lock (embedded: this process owns every actor) and KV leases with fencing
 *   (cluster, `src/cluster/`).
 *
 * The fact model is the same behind both: every fact belongs to one **chain** — an actor's
 * address (`deployment/web`), or a runtime chain (`_runtime/<name>`) for facts with no
 * actor (grant changes, rejected intents without a valid target). `seq` is the position in
 * that chain (1, 2, …), `prev` the hash of the chain's previous fact ("" before the first),
 * `causes` name seqs of the same chain.
 */

/** Where a chain ends: the next fact gets `seq + 1` and `prev = hash`. */
export interface ChainHead {
  seq: number;
  hash: string;
}

export const EMPTY_HEAD: ChainHead = Object.freeze({ seq: 0, hash: '' });

/** The runtime chain of a process (actorless facts): `_runtime/<name>`. */
export const RUNTIME_KIND = '_runtime';
export const runtimeChain = (name: string): string => `${RUNTIME_KIND}/${name}`;
export const isRuntimeChain = (chain: string): boolean => chain.startsWith(`${RUNTIME_KIND}/`);

export interface StoredOutcome {
  intentId: string;
  digest: string;
  outcome: Outcome;
}

/**
 * An intent waiting for approvals, rewritten by each approval counted (both stores keep it
 * whole: SQLite in `pending.body`, JetStream as the `ICE_PENDING` value and in the turn's
 * message). The optional fields are absent in records written before quorums; they then
 * mean: the pending decision's requirement (or one approver, anyone), `createdAt` + its
 * `ttlMs`, no approvals, the seq of the pending outcome.
 */
export interface PendingRecord {
  intentId: string;
  actor: string;
  intent: unknown;
  decision: unknown;
  createdAt: string;
  /** What it waits for: quorum, approver patterns, ttl. */
  requirement?: ApprovalRequirement;
  /** The approval deadline (ISO): later approvals are refused, the intent is denied `approval_expired`. */
  expiresAt?: string;
  /** Approvals counted so far, oldest first. */
  approvals?: ApprovalEntry[];
  /** Seq of the pending `decision` fact on the actor's chain: every approval fact cites it in `causes`. */
  decisionSeq?: number;
}

/**
 * One turn of one chain: what a single intent (or spawn, stop, signal, grant change, …)
 * leaves behind. Committed all or nothing.
 */
export interface Turn {
  chain: string;
  /** The head the facts were chained onto: the fence. A store whose head differs refuses. */
  after: ChainHead;
  /** Chained onto `after`: facts[0].seq = after.seq + 1, facts[0].prev = after.hash, … */
  facts: Fact[];
  /** The hashed text of each fact, when the caller has it (saves a serialization). */
  bodies?: string[];
  /** The actor's snapshot after this turn (actor chains only). */
  snapshot?: SnapshotRecord;
  outcome?: StoredOutcome;
  pendingPut?: PendingRecord;
  pendingDelete?: string;
  /** Grant records that change with this turn (issue, revoke, a use). */
  grants?: Grant[];
  /**
   * The writer's signature over the head this turn leaves (`turnAttestationText`), where the
   * store keeps one per turn (JetStream). The SQLite store signs a checkpoint per group commit
   * instead.
   */
  attestation?: { keyId: string; sig: string };
  /**
   * Asked by a store whose fence may fail under concurrent writers (JetStream on nats-server
   * 2.9) when the append is acknowledged: false when the writer is no longer sure it owns the
   * chain, so the store confirms which message took the position before it reports success.
   */
  stillSure?: () => boolean;
}

/** The bytes a turn attestation signs: `ice-turn:<chain>:<seq>:<hash>` of the turn's last fact. */
export const turnAttestationText = (chain: string, head: ChainHead): string => `ice-turn:${chain}:${head.seq}:${head.hash}`;

export interface LoadedChain {
  /** The stored snapshot (a cache in the cluster; may be behind the head). */
  snapshot?: SnapshotRecord;
  /** Every fact after `snapshot.seq` (all of them without a snapshot), checked to link. */
  facts: Fact[];
  head: ChainHead;
}

export interface ActorIndexRow {
  actor: string;
  kind: string;
  seq: number;
  status: SnapshotRecord['status'];
  state: string;
}

export interface StorePort {
  readonly kind: 'sqlite' | 'jetstream';
  /**
   * Commits a turn; resolves once it is durable (acknowledge only then). Turns of one chain
   * are applied in call order; when one fails, every later turn of that chain fails too
   * (they were chained onto it), and the caller drops its in-memory state of the chain.
   * @throws ConflictError (`E_CONFLICT`) when the chain's stored head is not `turn.after`:
   *   another writer appended.
   * @throws JournalError when the store could not make it durable.
   */
  commit(turn: Turn): Promise<void>;
  /**
   * Reads a chain back: the stored snapshot and every fact after it, checked to link.
   * @throws JournalBrokenError naming the chain and seq where it forks or has a gap.
   */
  load(chain: string): Promise<LoadedChain>;
  /** Where a chain ends (counting turns handed to this store that are not yet durable). */
  head(chain: string): Promise<ChainHead>;
  /** The newest committed snapshot of an actor (wherever it is hosted), or undefined. */
  latestSnapshot(actor: string): Promise<SnapshotRecord | undefined>;
  /** The stored outcome of an intent id. Complete for every turn committed before the call. */
  outcome(intentId: string): Promise<StoredOutcome | undefined>;
  pending(intentId?: string): Promise<PendingRecord[]>;
  /** Every actor at once (small stores, tooling): prefer `actorsPage`. */
  actors(): Promise<ActorIndexRow[]>;
  /**
   * One page of the actor index, in address order (src/host/actor-page.ts), without reading
   * snapshot bodies where the store can avoid it. `next` is set when more rows may follow.
   */
  actorsPage(q: ActorPageQuery): Promise<ActorPage<ActorIndexRow>>;
  grants(): Promise<Grant[]>;
  /**
   * Actors that need waking by `before` (epoch ms: a durable timer due, a restart), earliest
   * first, at most `limit`: from an index of the snapshot records' `wakeAt`, never a scan of
   * every snapshot. In a cluster, an entry may be early (written ahead of its turn), never missing.
   */
  wakeups(before: number, limit: number): Promise<Array<{ actor: string; dueAt: number }>>;
  /** The snapshot records of actors with pending timers or a restart (`ice timers ls`), earliest first. */
  timers(limit: number): Promise<SnapshotRecord[]>;
  /** Facts of one chain from `fromSeq`, oldest first. */
  chainFacts(chain: string, fromSeq: number, limit: number): Promise<Fact[]>;
  /** Resolves when every commit handed over so far is settled. */
  drain(): Promise<void>;
}

/** Who may execute for an actor. */
export type Ownership = { kind: 'mine' } | { kind: 'elsewhere'; owner: string } | { kind: 'unknown'; reason: string };

export interface OwnershipPort {
  /** This process's name as an owner (the node name). */
  readonly node: string;
  /**
   * Claims an actor for this process if nobody else holds it. `mine`: this process may
   * execute for it until `onLost` says otherwise; `elsewhere`: forward to `owner`.
   */
  claim(actor: string): Promise<Ownership>;
  /** True while this process is sure it holds the actor (checked right before each commit). */
  holds(actor: string): boolean;
  /** Gives an actor up (passivation). */
  release(actor: string): Promise<void>;
  /** Called when a held actor turns out to be someone else's: drop it, do not commit. */
  onLost(listener: (actor: string, owner: string | undefined) => void): () => void;
  close(opts?: { release?: boolean }): Promise<void>;
}
