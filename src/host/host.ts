import { createActor, type AnyActorRef, type AnyStateMachine, type InspectionEvent, type Snapshot } from 'xstate';
import {
  AlreadyExistsError,
  ApprovalRefusedError,
  ConflictError,
  DecisionVerificationError,
  ExistingDiffersError,
  IceError,
  VersionError,
  JournalBrokenError,
  NotFoundError,
  ValidationError,
  ensureError,
} from '../errors.js';
import {
  ApprovalRefusal,
  FactType,
  Origin,
  assertUnicode,
  canonicalJson,
  chainFact,
  checkChain,
  parseAddress,
  parseChildAddress,
  splitAddress,
  type ActorAddress,
  type ApprovalEntry,
  type Decision,
  type Fact,
  type FactDraft,
  type Grant,
  type Intent,
  type Outcome,
  type Reason,
  type SnapshotRecord,
  type TimerRecord,
} from '../protocol/index.js';
import {
  verifyDecision,
  zodIssues,
  type ApprovalJudgement,
  type judgeApproval,
  type ActorView,
  type AuthorityKey,
  type GrantBook,
  type LocalTrust,
  type RunView,
} from '../authority/index.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import { DEFAULT_SUPERVISION, type ActorDefinition, type ActorRegistry, type EscalationTarget } from './definition.js';
import { stateToString } from './state-value.js';
import { ActorTimers, refAt } from './timers.js';
import { actorPrincipal, emittedIntentId, isProposeEmitted, outcomeEvent, type OutboxEntry, type ProposeEmitted } from './outbox.js';
import { attemptEffect, effectId, isEffectEmitted, stillIn, type EffectEmitted, type EffectEntry } from './effects.js';
import {
  childInfo,
  deliverTo,
  effectsInFlight,
  journalEvent,
  liveChild,
  lostEvent,
  sendRecorded,
  storedChild,
  watchChildren,
  withoutLostChildren,
  type ChildEvent,
  type LostChild,
} from './children.js';
import { TimerSchedule } from './timer-schedule.js';
import { checkStartedVersion, restorableSnapshot, snapshotRecord, type Restorable } from './migrations.js';
import { matchesActorPage, type ActorPage, type ActorPageQuery } from './actor-page.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import {
  EMPTY_HEAD,
  type ChainHead,
  type OwnershipPort,
  type PendingRecord,
  type StoredOutcome,
  type StorePort,
  type Turn,
} from './ports.js';
import {
  approvalRefusedData,
  newPendingRecord,
  pendingTerms,
  type ApprovalDraft,
  type PendingTerms,
  type Settled,
  type SettleHow,
} from './pending-approval.js';

/**
 * Hosts actors, in both deployments: creates, restores, stops them, and executes intents as
 * transitions. What differs between one process and a cluster sits behind the two ports it
 * is given (ports.ts): where turns are committed, and who may execute for an actor.
 *
 * Invariants enforced here:
 * - nothing transitions without a decision that verifies (signature of a known authority,
 *   bound to this intent's id and digest, not expired) and says `granted`;
 * - the facts of one intent, the actor's new snapshot and the outcome are ONE turn, committed
 *   atomically and fenced (the turn continues the chain head the host read);
 * - an intent id is executed at most once: inside the actor's turn the store's outcome is
 *   looked up before deciding (complete for every committed turn, in both stores);
 * - intents to one actor run one at a time (`withActor`), so the state a decision saw is
 *   the state the transition starts from; the commit is awaited outside that turn, which
 *   lets the next intent pipeline behind it;
 * - nothing is committed for an actor this process is not sure it owns (`holds`, checked
 *   right before each commit); a lost actor is dropped from memory at once;
 * - a transition that throws (XState error status) is not kept: the actor goes back to its
 *   last snapshot, and an `intent.failed` fact is written instead of a transition;
 * - if a commit fails, the actor is dropped from memory and reloads from the store;
 * - a grant with `maxUses` is spent in the intent's turn, before its commit: a use is never
 *   missing for an execution, and a retry of the same intent is not charged twice.
 */

export interface ActorInfo {
  address: string;
  kind: string;
  state: string;
  status: SnapshotRecord['status'];
  seq: number;
  owner: string;
  active: boolean;
}

/** What `spawn` returns: the actor, and whether this call created it (false: it existed, `ifAbsent`). */
export interface Spawned extends ActorInfo {
  created: boolean;
}

export interface ActorDetail extends ActorInfo {
  context: unknown;
  snapshot: unknown;
}

export interface Applied {
  outcome: Outcome;
  /** Resolves when the turn is durable; acknowledge only then. */
  committed: Promise<void>;
}

export interface InspectRecord {
  actor: string;
  node: string;
  event: InspectionEvent;
}

/** What a turn on an actor found: the actor is here, elsewhere, or does not exist. */
export type Located = { kind: 'here'; entry: Entry } | { kind: 'elsewhere'; owner: string } | { kind: 'missing' };

export interface Entry {
  address: ActorAddress;
  def: ActorDefinition;
  actor: AnyActorRef;
  status: SnapshotRecord['status'];
  state: string;
  head: ChainHead;
  persisted: Snapshot<unknown>;
  /** Its durable timers (XState's delayed events): live, and as of the last turn built. */
  timers: ActorTimers;
  timersPersisted: TimerRecord[];
  /** Times of its failures (epoch ms), for the supervision window; when a failed actor restarts. */
  failures: number[];
  restartAt: number | undefined;
  /** Intents it emitted whose final outcome is not applied yet (see outbox.ts); `held` until their turn commits. */
  outbox: Array<OutboxEntry & { held?: boolean }>;
  /** What the machine emitted (`ice.propose`) during the live turn being built; undefined outside one. */
  emits: { live: boolean; got: Array<ProposeEmitted | EffectEmitted> };
  /** Effects started and not finished (effects.ts); `held` until their turn commits. */
  effects: Array<EffectEntry & { held?: boolean }>;
  /** Effects running now (an attempt in flight), with the signal that cancels them. */
  running?: Map<string, AbortController>;
  /** Intent ids of its outbox being delivered now. */
  delivering?: Set<string>;
  /** Clock time of the last activation or use, for idle passivation. */
  lastUsed: number;
  /** Turns handed to the store and not yet settled: the actor stays in memory meanwhile. */
  pending: number;
  /**
   * Outcomes of this entry's turns whose commits are not settled yet, by intent id, with the
   * commit: a repeat answered from here is answered once that commit is durable, and fails
   * with it.
   */
  uncommitted: Map<string, { stored: StoredOutcome; committed: Promise<void> }>;
  /**
   * Pending records written by this entry's turns whose commits are not settled yet (null: a
   * delete): the next approval in the actor's turn counts on the one before it.
   */
  pendingUncommitted: Map<string, PendingRecord | null>;
}

export interface HostOptions {
  node: string;
  registry: ActorRegistry;
  store: StorePort;
  ownership: OwnershipPort;
  grants: GrantBook;
  /** This process's chain for facts without an actor: `_runtime/<name>`. */
  runtimeChain: string;
  clock: Clock;
  logger: Logger;
  authorityKeys: ReadonlyMap<string, AuthorityKey>;
  /** Decisions vouched for in this process skip the signature check (not the binding checks). */
  trust?: LocalTrust;
  /** Called with every committed turn's facts (publishing on `ice.fact.…`, listeners). */
  onCommitted?: (facts: readonly Fact[]) => void;
  /** Fire durable timers when due (default true); false: only `fireTimers`/`fireDueTimers` calls do. */
  fireTimers?: boolean;
  /** Signs each turn's head, where the store keeps a signature per turn (cluster). */
  attest?: (chain: string, head: ChainHead) => { keyId: string; sig: string };
}

/** Denial reasons that a grant issued elsewhere a moment ago could turn around. */
const GRANT_REASONS = new Set(['no_grant', 'grant_expired', 'grant_exhausted', 'grant_run_mismatch']);

export type Decide = (intent: Intent, digest: string, approvedBy?: string) => Promise<Decision>;

export class Host {
  readonly node: string;
  readonly runtimeChain: string;
  readonly store: StorePort;
  readonly ownership: OwnershipPort;
  readonly #registry: ActorRegistry;
  readonly #grants: GrantBook;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #keys: ReadonlyMap<string, AuthorityKey>;
  readonly #trust: LocalTrust | undefined;
  readonly #onCommitted: (facts: readonly Fact[]) => void;
  readonly #attest: HostOptions['attest'];
  readonly #entries = new Map<string, Entry>();
  readonly #turns = new KeyedMutex();
  readonly #inspectListeners = new Set<(r: InspectRecord) => void>();
  /** The inspection observer of each actor that has one (see onInspect). */
  readonly #inspecting = new WeakMap<AnyActorRef, Observed>();
  /** Actors already restored in this process: re-activation after passivation is not a new fact. */
  readonly #restored = new Set<string>();
  /** Run views read for the decision being made in the current turn. */
  readonly #runViews = new Map<string, RunView>();
  /**
   * Ids of the signed decisions this host accepted, until they expire: a decision is used
   * once. (Decisions vouched for in this process are never copied off it, so they need no entry.)
   */
  readonly #usedDecisions = new Map<string, number>();
  #runtimeHead: ChainHead | undefined;
  readonly #unsubscribeLost: () => void;
  /** Delivery attempts of emitted intents that got "try again" (for backoff), by intent id. */
  readonly #deliveryAttempts = new Map<string, number>();
  /** Actors whose timers could not fire (not restorable here): not woken again by this process. */
  readonly #unwakeable = new Set<string>();
  /** When each actor with timers (in memory or passivated) next has one due; fires them. */
  readonly #timerSchedule: TimerSchedule;

  constructor(opts: HostOptions) {
    this.node = opts.node;
    this.runtimeChain = opts.runtimeChain;
    this.store = opts.store;
    this.ownership = opts.ownership;
    this.#registry = opts.registry;
    this.#grants = opts.grants;
    this.#clock = opts.clock;
    this.#log = opts.logger;
    this.#keys = opts.authorityKeys;
    this.#trust = opts.trust;
    this.#onCommitted = opts.onCommitted ?? (() => {});
    this.#attest = opts.attest;
    this.#timerSchedule = new TimerSchedule(this.#clock, (address) => this.fireTimers(address), opts.fireTimers ?? true);
    this.#unsubscribeLost = this.ownership.onLost((actor, owner) => {
      if (!this.#entries.has(actor)) return;
      this.#log.warn({ actor, owner }, 'actor lost to another owner: standing down');
      this.#drop(actor);
      this.#timerSchedule.remove(actor);
    });
  }

  get activeCount(): number {
    return this.#entries.size;
  }

  /** Actors in memory here whose status is failed. */
  get failedCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.status === 'failed') n++;
    return n;
  }

  /** Actors this host will wake for a timer or a restart. */
  get wakeupCount(): number {
    return this.#timerSchedule.size;
  }

  /** Actors in the store, with the state of those active here (which may be ahead of the store). */
  async list(): Promise<ActorInfo[]> {
    const rows = await this.store.actors();
    return rows
      .filter((r) => !r.actor.startsWith('_runtime/'))
      .map((r) => {
        const e = this.#entries.get(r.actor);
        return e
          ? { address: r.actor, kind: r.kind, state: e.state, status: e.status, seq: e.head.seq, owner: this.node, active: true }
          : { address: r.actor, kind: r.kind, state: r.state, status: r.status, seq: r.seq, owner: '', active: false };
      })
      .sort((a, b) => a.address.localeCompare(b.address));
  }

  /**
   * One page of the actors in the store (src/host/actor-page.ts), with the state of those
   * active here. An active actor whose state here (ahead of the store) no longer passes the
   * filters is left out; one whose stored state did not pass but whose state here does is
   * not found (the store is behind by the commits in flight only).
   */
  async listPage(q: ActorPageQuery): Promise<ActorPage<ActorInfo>> {
    const page = await this.store.actorsPage(q);
    const rows = page.rows.map((r): ActorInfo => {
      const e = this.#entries.get(r.actor);
      return e ? this.#info(e) : { address: r.actor, kind: r.kind, state: r.state, status: r.status, seq: r.seq, owner: '', active: false };
    });
    return { rows: rows.filter((r) => matchesActorPage(r, q)), ...(page.next !== undefined ? { next: page.next } : {}) };
  }

  async detail(address: string): Promise<ActorDetail | undefined> {
    const path = parseChildAddress(address);
    if (path) return this.#childDetail(path.parent, path.child);
    const e = this.#entries.get(address);
    if (e) {
      const context = (e.actor.getSnapshot() as { context?: unknown }).context;
      return { ...this.#info(e), context, snapshot: e.persisted };
    }
    const rec = await this.store.latestSnapshot(address);
    if (!rec) return undefined;
    const context = (rec.snapshot as { context?: unknown } | undefined)?.context;
    return { ...storedInfo(address, rec), context, snapshot: rec.snapshot };
  }

  /** A child (`kind/id/a/b`): live if its actor is here, else from the stored snapshot. */
  async #childDetail(parent: string, path: string): Promise<ActorDetail | undefined> {
    const e = this.#entries.get(parent);
    const rec = e ? undefined : await this.store.latestSnapshot(parent);
    const c = e ? liveChild(e.actor, path) : rec ? storedChild(rec.snapshot, path) : undefined;
    if (!c) return undefined;
    const info = e ? this.#info(e) : storedInfo(parent, rec!);
    return { ...info, ...childInfo(parent, c), context: c.context, snapshot: c.snapshot };
  }

  /** This process's in-memory entry of an actor (it believes it owns it). */
  local(address: string): (ActorInfo & { context: unknown }) | undefined {
    const e = this.#entries.get(address);
    return e ? { ...this.#info(e), context: (e.actor.getSnapshot() as { context?: unknown }).context } : undefined;
  }

  /**
   * Listens to the XState inspection events of every actor hosted here. Actors report to
   * an inspection observer only while somebody listens: XState builds no inspection events
   * for an actor system without observers.
   */
  onInspect(listener: (r: InspectRecord) => void): () => void {
    this.#inspectListeners.add(listener);
    if (this.#inspectListeners.size === 1) for (const e of this.#entries.values()) this.#observe(e.address, e.actor);
    return () => {
      if (!this.#inspectListeners.delete(listener) || this.#inspectListeners.size > 0) return;
      for (const e of this.#entries.values()) {
        const o = this.#inspecting.get(e.actor);
        if (!o) continue;
        o.on = false;
        if (o.sub) {
          o.sub.unsubscribe();
          this.#inspecting.delete(e.actor);
        }
      }
    };
  }

  /** Attaches (or switches back on) the inspection observer of an actor created earlier. */
  #observe(address: string, actor: AnyActorRef): void {
    const o = this.#inspecting.get(actor);
    if (o) {
      o.on = true;
      return;
    }
    const n: Observed = { on: true };
    n.sub = actor.system.inspect((ev: InspectionEvent) => n.on && this.#inspected(address, ev));
    this.#inspecting.set(actor, n);
  }

  #inspected(address: string, ev: InspectionEvent): void {
    for (const l of this.#inspectListeners) l({ actor: address, node: this.node, event: ev });
  }

  /** Runs `fn` when no other turn of this actor is running; turns run in arrival order. */
  withActor<T>(address: string, fn: () => T | Promise<T>): Promise<T> {
    return this.#turns.run(address, fn);
  }

  /**
   * Finds an actor for a turn: active here, or claimed and loaded now; or owned elsewhere; or
   * missing. Call inside `withActor(address)`.
   * @throws JournalBrokenError when its chain forks or has a gap (the actor stays stopped).
   */
  async locate(address: string): Promise<Located> {
    const existing = this.#entries.get(address);
    if (existing) {
      if (this.ownership.holds(address)) {
        existing.lastUsed = this.#clock.now();
        return { kind: 'here', entry: existing };
      }
      this.#drop(address);
    }
    const own = await this.ownership.claim(address);
    if (own.kind === 'elsewhere') return { kind: 'elsewhere', owner: own.owner };
    if (own.kind === 'unknown') throw new IceError('E_OWNERSHIP', own.reason, 'retry');
    let entry: Entry | undefined;
    try {
      entry = await this.#activate(address);
    } catch (e) {
      await this.ownership.release(address).catch(() => {});
      throw e;
    }
    if (!entry) {
      await this.ownership.release(address).catch(() => {});
      return { kind: 'missing' };
    }
    return { kind: 'here', entry };
  }

  /** What the authority may see of an actor: only the one whose turn this is, active here. */
  view(address: string): ActorView {
    const e = this.#entries.get(address);
    if (!e) return { exists: false, status: 'missing', state: '', context: undefined, can: () => false };
    const snap = e.actor.getSnapshot() as { can(ev: unknown): boolean; context: unknown };
    return { exists: true, status: e.status, state: e.state, context: snap.context, can: (ev) => e.status === 'active' && snap.can(ev) };
  }

  /** The run view read for the current decision (see {@link Host.readRun}). */
  runView(runId: string | undefined): RunView | undefined {
    if (runId === undefined) return undefined;
    return this.#runViews.get(runId) ?? { exists: false, state: '', executing: false };
  }

  /**
   * Reads the run an intent is bound to, wherever it lives: the in-memory actor if this
   * process hosts it, else its newest committed snapshot from the store.
   */
  async readRun(runId: string | undefined): Promise<void> {
    if (runId === undefined) return;
    const address = `run/${runId}`;
    const e = this.#entries.get(address);
    if (e) {
      const snap = e.actor.getSnapshot() as { hasTag(t: string): boolean };
      this.#runViews.set(runId, { exists: true, state: e.state, executing: e.status === 'active' && snap.hasTag('executing') });
      return;
    }
    const rec = await this.store.latestSnapshot(address);
    const def = rec ? this.#registry.get(rec.kind) : undefined;
    if (!rec || !def) {
      this.#runViews.set(runId, { exists: false, state: '', executing: false });
      return;
    }
    let stored: unknown;
    try {
      stored = restorableSnapshot(address, def, rec).snapshot;
    } catch {
      // a run no version here can restore is not taken for an executing one
      this.#runViews.set(runId, { exists: false, state: '', executing: false });
      return;
    }
    // without its effect children: a probe must not start a stored promise again
    const probe = createActor(def.machine, { snapshot: withoutLostChildren(def.machine, stored).snapshot as Snapshot<unknown> });
    probe.subscribe({ error: () => {} });
    probe.start();
    const snap = probe.getSnapshot() as unknown as { hasTag(t: string): boolean };
    const executing = rec.status === 'active' && snap.hasTag('executing');
    probe.stop();
    this.#runViews.set(runId, { exists: true, state: rec.state, executing });
  }

  /**
   * One intent, start to finish, inside its actor's turn: locate the actor, answer a repeat
   * from the stored outcome, read the run, decide, spend the grant's use, apply, commit.
   * Returns the outcome with its commit, or where the actor lives instead.
   */
  async execute(
    intent: Intent,
    digest: string,
    decide: Decide,
    opts: { event?: { type: string } & Record<string, unknown> } = {},
  ): Promise<Applied | { forward: string } | { missing: true } | { conflict: true }> {
    return this.withActor(intent.target, async () => {
      const where = await this.locate(intent.target);
      if (where.kind === 'elsewhere') return { forward: where.owner };
      if (where.kind === 'missing') return { missing: true as const };
      // A repeat may have been executed by a previous owner, or by this process moments ago
      // (its turn applied, its commit not yet acknowledged: then only this entry knows it).
      const known = await this.#knownOutcome(where.entry, intent.id);
      if (known) {
        if (known.stored.digest !== digest) return { conflict: true as const };
        return { outcome: known.stored.outcome, committed: known.committed };
      }
      return this.#decideAndApply(where.entry, intent, digest, decide, opts);
    });
  }

  /**
   * The outcome an intent already has on this actor: of a turn of this process still
   * committing (answered once that commit is durable, failing with it), else the stored one.
   */
  async #knownOutcome(e: Entry, intentId: string): Promise<{ stored: StoredOutcome; committed: Promise<void> } | undefined> {
    const inFlight = e.uncommitted.get(intentId);
    if (inFlight) return inFlight;
    const stored = await this.store.outcome(intentId);
    return stored ? { stored, committed: Promise.resolve() } : undefined;
  }

  /**
   * Settles a pending intent inside its actor's turn: `approve` counts an approval (judged
   * first: deadline, proposer, approver patterns, repeats) and, once the quorum is reached,
   * re-decides it against the actor's current state and the current grants and policies,
   * then applies; `deny` records the refusal; `expire` denies it `approval_expired` if its
   * deadline passed. Every approval, refusal and expiry leaves a fact citing the pending
   * decision. A refused attempt comes back as `refused` (its fact committed with the turn).
   * Returns where the actor lives if not here.
   */
  async settle(
    intentId: string,
    how: SettleHow,
    ctx: {
      validate: (intent: unknown) => { intent: Intent; digest: string; event: { type: string } & Record<string, unknown> };
      decide: Decide;
      judge: (a: Omit<Parameters<typeof judgeApproval>[0], 'isMember'>) => ApprovalJudgement;
    },
  ): Promise<Settled | { forward: string }> {
    const [p] = await this.store.pending(intentId);
    if (!p) {
      if ('expire' in how) return { outcome: undefined, committed: Promise.resolve() };
      // Never pending, or settled already: recorded on this process's runtime chain.
      const known = await this.store.outcome(intentId);
      const refusal = known ? ApprovalRefusal.notPending : ApprovalRefusal.unknown;
      const message = known ? `no longer pending (it was ${known.outcome.status})` : 'no pending intent with this id';
      const who = 'approve' in how ? how.approve : how.deny;
      const refused = new ApprovalRefusedError(refusal, intentId, message);
      const committed = this.record([
        {
          type: FactType.approvalRefused,
          origin: Origin.operator,
          intentId,
          data: approvalRefusedData(how, refusal, message, who.by),
        },
      ]).then(() => {});
      return { outcome: undefined, committed, refused };
    }
    const v = ctx.validate(p.intent);
    return this.withActor(v.intent.target, async () => {
      const where = await this.locate(v.intent.target);
      if (where.kind === 'elsewhere') return { forward: where.owner };
      if (where.kind === 'missing') throw new NotFoundError(`actor ${v.intent.target}`);
      const e = where.entry;
      // An approval or refusal settled moments ago in this process may not have reached the
      // store's pending list yet (its turn applied, its commit or derived write in flight):
      // the outcome it left is the answer, not the pending record.
      const known = (await this.#knownOutcome(e, intentId))?.stored.outcome;
      const mine = e.pendingUncommitted.get(intentId);
      const [still] =
        known && known.status !== 'pending' ? [] : mine !== undefined ? (mine ? [mine] : []) : await this.store.pending(intentId);
      if (!still) {
        if ('expire' in how) return { outcome: undefined, committed: Promise.resolve() };
        const message = `no longer pending${known ? ` (it was ${known.status})` : ''}`;
        return this.#refuseApproval(e, v.intent, how, undefined, ApprovalRefusal.notPending, message);
      }
      const terms = pendingTerms(still, known?.status === 'pending' ? known.seq : undefined);
      const now = this.#clock.now();
      if ('expire' in how) {
        if (now < terms.expiresAt) return { outcome: undefined, committed: Promise.resolve() };
        return this.#expirePending(e, v.intent, v.digest, terms, undefined);
      }
      const who = 'approve' in how ? how.approve : how.deny;
      const j = ctx.judge({
        requirement: terms.requirement,
        approvals: terms.approvals,
        expiresAt: terms.expiresAt,
        proposer: v.intent.proposer,
        by: who.by,
        now,
        kind: 'approve' in how ? 'approve' : 'deny',
      });
      if (!j.ok) {
        if (j.refusal === ApprovalRefusal.expired) return this.#expirePending(e, v.intent, v.digest, terms, { how, message: j.message });
        return this.#refuseApproval(e, v.intent, how, terms, j.refusal, j.message);
      }
      if ('deny' in how) return this.#refusePending(e, v.intent, v.digest, terms, how.deny.by, how.deny.reason);
      const count = terms.approvals.length + 1;
      const approval: ApprovalDraft = {
        by: how.approve.by,
        ...(how.approve.note ? { note: how.approve.note } : {}),
        decisionId: terms.decision.id,
        decisionSeq: terms.decisionSeq,
        count,
        quorum: terms.requirement.quorum,
      };
      if (count < terms.requirement.quorum) return this.#countApproval(e, v.intent, v.digest, still, terms, approval);
      const approvedBy = [...terms.approvals.map((a) => a.by), how.approve.by].join(',');
      return this.#decideAndApply(e, v.intent, v.digest, (i, d) => ctx.decide(i, d, approvedBy), { event: v.event, approval });
    });
  }

  /** Counts an approval short of the quorum: an `approval` fact, the pending record with it. */
  #countApproval(e: Entry, intent: Intent, digest: string, rec: PendingRecord, terms: PendingTerms, a: ApprovalDraft): Settled {
    const b = this.#builder(e);
    const f = this.#proposed(b, intent, digest, { approval: a });
    const entry: ApprovalEntry = { by: a.by, at: f.at, ...(a.note ? { note: a.note } : {}), seq: f.seq };
    b.pendingPut = {
      ...rec,
      requirement: terms.requirement,
      expiresAt: new Date(terms.expiresAt).toISOString(),
      approvals: [...terms.approvals, entry],
      decisionSeq: terms.decisionSeq,
    };
    const outcome: Outcome = {
      v: 1,
      status: 'pending',
      intentId: intent.id,
      actor: intent.target,
      decisionId: terms.decision.id,
      reasons: [
        {
          code: 'approval_recorded',
          message: `approval recorded, ${a.count} of ${a.quorum} (by ${a.by}; ${a.quorum - a.count} more needed before ${new Date(terms.expiresAt).toISOString()})`,
        },
      ],
      seq: f.seq,
    };
    this.#log.info({ actor: intent.target, intent: intent.id, by: a.by, count: a.count, quorum: a.quorum }, 'approval recorded');
    return { outcome, committed: this.#commit(e, b.turn()) };
  }

  /** Records a refused approval or denial: an `approval.refused` fact citing the pending decision. */
  #refuseApproval(
    e: Entry,
    intent: Intent,
    how: { approve: { by: string; note?: string } } | { deny: { by: string; reason: string } },
    terms: PendingTerms | undefined,
    refusal: ApprovalRefusal,
    message: string,
  ): Settled {
    const b = this.#builder(e);
    const who = 'approve' in how ? how.approve : how.deny;
    b.fact({
      type: FactType.approvalRefused,
      origin: Origin.operator,
      intentId: intent.id,
      ...(terms && terms.decisionSeq > 0 ? { causes: [terms.decisionSeq] } : {}),
      data: { ...approvalRefusedData(how, refusal, message, who.by), ...(terms ? { decisionId: terms.decision.id } : {}) },
    });
    this.#log.info({ actor: intent.target, intent: intent.id, by: who.by, refusal }, 'approval refused');
    return { outcome: undefined, committed: this.#commit(e, b.turn()), refused: new ApprovalRefusedError(refusal, intent.id, message) };
  }

  /**
   * Denies a pending intent whose deadline passed: an `approval.expired` fact (citing the
   * pending decision) and the denied outcome; with `late`, the refused attempt that noticed it.
   */
  #expirePending(
    e: Entry,
    intent: Intent,
    digest: string,
    terms: PendingTerms,
    late: { how: { approve: { by: string; note?: string } } | { deny: { by: string; reason: string } }; message: string } | undefined,
  ): Settled {
    const b = this.#builder(e);
    const expiresAt = new Date(terms.expiresAt).toISOString();
    const { outcome, seq } = this.#denyPending(
      b,
      intent,
      digest,
      terms,
      {
        type: FactType.approvalExpired,
        origin: Origin.runtime,
        data: {
          decisionId: terms.decision.id,
          policy: terms.requirement.policy,
          expiresAt,
          quorum: terms.requirement.quorum,
          approvals: terms.approvals.map((a) => a.by),
        },
      },
      {
        code: 'approval_expired',
        message: `${terms.approvals.length} of ${terms.requirement.quorum} approvals by ${expiresAt}, when the approval window of policy ${terms.requirement.policy} closed`,
      },
    );
    let refused: ApprovalRefusedError | undefined;
    if (late) {
      const who = 'approve' in late.how ? late.how.approve : late.how.deny;
      b.fact({
        type: FactType.approvalRefused,
        origin: Origin.operator,
        intentId: intent.id,
        causes: [seq],
        data: { ...approvalRefusedData(late.how, ApprovalRefusal.expired, late.message, who.by), decisionId: terms.decision.id },
      });
      refused = new ApprovalRefusedError(ApprovalRefusal.expired, intent.id, `${late.message}; the intent is denied (approval_expired)`);
    }
    this.#log.info({ actor: intent.target, intent: intent.id, expiresAt }, 'pending intent expired');
    return { outcome, committed: this.#commit(e, b.turn()), ...(refused ? { refused } : {}) };
  }

  async #decideAndApply(
    e: Entry,
    intent: Intent,
    digest: string,
    decide: Decide,
    opts: { event?: { type: string } & Record<string, unknown>; approval?: ApprovalDraft },
  ): Promise<Applied> {
    await this.readRun(intent.runId);
    try {
      let decision = await decide(intent, digest);
      // Denied for want of a grant: this node's view of the grants may trail a change made
      // through another node a moment ago; catch up once and decide again.
      if (decision.verdict === 'denied' && decision.reasons.some((r) => GRANT_REASONS.has(r.code)) && (await this.#grants.catchUp())) {
        decision = await decide(intent, digest);
      }
      let spent: Grant | undefined;
      // A grant with maxUses: spend the use before committing. If another intent took the
      // last one meanwhile (another node, or a concurrent turn), decide again: the book now
      // knows the grant is exhausted.
      for (let attempt = 0; decision.verdict === 'granted' && decision.grantId !== undefined; attempt++) {
        const g = this.#grants.get(decision.grantId);
        if (g?.maxUses === undefined) break;
        spent = await this.#grants.spend(g.id, intent.id);
        if (spent) break;
        if (attempt >= 3) throw new ConflictError(`grant ${g.id}: its last uses kept being taken while deciding ${intent.id}`);
        decision = await decide(intent, digest);
      }
      if (this.#entries.get(intent.target) !== e) {
        throw new IceError('E_NOT_OWNER', `${this.node} lost ${intent.target} while deciding; retry with the same id`, 'retry');
      }
      return this.apply(intent, digest, decision, { ...opts, ...(spent ? { grants: [spent] } : {}) });
    } finally {
      if (intent.runId !== undefined) this.#runViews.delete(intent.runId);
    }
  }

  /**
   * Applies an authority decision to its intent. Call inside `withActor(intent.target)` with
   * the actor active here. Writes `intent.proposed` (or `approval`), the decision, and —
   * only when granted and verified — the transition, all in one turn.
   */
  apply(
    intent: Intent,
    digest: string,
    decision: Decision,
    opts: {
      approval?: ApprovalDraft;
      event?: { type: string } & Record<string, unknown>;
      grants?: Grant[];
    } = {},
  ): Applied {
    const target = intent.target;
    const e = this.#entries.get(target);
    if (!e) throw new IceError('E_NOT_OWNER', `${target} is not active on ${this.node}; retry with the same id`, 'retry');
    const b = this.#builder(e);
    b.runId = intent.runId;
    const log = (level: 'info' | 'warn' | 'debug', o: object, m: string) => this.#log[level]({ actor: target, intent: intent.id, ...o }, m);
    const f1 = this.#proposed(b, intent, digest, opts);
    try {
      const local = this.#trust?.isLocalDecision(decision) === true;
      const now = this.#clock.now();
      verifyDecision(decision, intent, digest, this.#keys, now, { skipSignature: local });
      if (!local) this.#useDecision(decision, now);
    } catch (err) {
      const v = err instanceof DecisionVerificationError ? err : new DecisionVerificationError('invalid', ensureError(err).message);
      log('warn', { reason: v.reason }, 'decision refused');
      const f2 = b.fact({
        type: FactType.decisionRefused,
        origin: Origin.runtime,
        intentId: intent.id,
        causes: [f1.seq],
        data: { decisionId: decision.id, reason: v.reason, message: v.message },
      });
      // No stored outcome: a forged decision must not block the genuine one.
      return { outcome: failed(intent, v.code, v.message, f2.seq), committed: this.#commit(e, b.turn()) };
    }
    const f2 = b.fact({ type: FactType.decision, origin: Origin.authority, intentId: intent.id, causes: [f1.seq], data: { decision } });
    if (opts.approval) b.pendingDelete = intent.id;
    if (opts.grants) {
      b.grants = opts.grants;
      // the use this intent spent (grants with maxUses), as a fact of its own turn
      for (const g of opts.grants)
        b.fact({
          type: FactType.grantUsed,
          origin: Origin.runtime,
          intentId: intent.id,
          causes: [f2.seq],
          data: { grantId: g.id, uses: g.uses, ...(g.maxUses !== undefined ? { maxUses: g.maxUses } : {}) },
        });
    }

    if (decision.verdict !== 'granted') {
      const outcome: Outcome = {
        v: 1,
        status: decision.verdict,
        intentId: intent.id,
        actor: target,
        decisionId: decision.id,
        reasons: decision.reasons,
        seq: f2.seq,
      };
      if (decision.verdict === 'pending') {
        b.pendingPut = newPendingRecord(intent, decision, f2.seq);
      }
      b.outcome = { intentId: intent.id, digest, outcome };
      log('info', { verdict: decision.verdict, reasons: decision.reasons.map((r) => r.code) }, `intent ${decision.verdict}`);
      return { outcome, committed: this.#commit(e, b.turn()) };
    }

    const fail = (code: string, message: string): Applied => {
      const f3 = b.fact({
        type: FactType.intentFailed,
        origin: Origin.runtime,
        intentId: intent.id,
        causes: [f2.seq],
        data: { code, message },
      });
      const outcome = failed(intent, code, message, f3.seq);
      b.outcome = { intentId: intent.id, digest, outcome };
      log('warn', { code }, `intent failed: ${message}`);
      return { outcome, committed: this.#commit(e, b.turn()) };
    };
    if (e.status !== 'active') return fail('E_ACTOR_NOT_ACTIVE', `${target} is ${e.status}`);
    const event = opts.event ?? eventOf(intent, e.def);
    const before = e.actor.getSnapshot() as { can(ev: unknown): boolean };
    if (!before.can(event)) return fail('E_STATE_CHANGED', `${target} in state ${e.state} can no longer take ${intent.action}`);

    const from = e.state;
    e.actor.send(event);
    const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
    if (after.status === 'error') {
      this.#revert(e);
      return fail('E_TRANSITION_THREW', ensureError(after.error).message);
    }
    const to = stateToString(after.value);
    const f3 = b.fact({
      type: FactType.transition,
      origin: Origin.runtime,
      intentId: intent.id,
      causes: [f2.seq],
      data: { from, to, event },
    });
    const outcome: Outcome = {
      v: 1,
      status: 'executed',
      intentId: intent.id,
      actor: target,
      from,
      to,
      decisionId: decision.id,
      ...(decision.grantId ? { grantId: decision.grantId } : {}),
      seq: f3.seq,
    };
    b.outcome = { intentId: intent.id, digest, outcome };
    this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
    log('debug', { from, to }, 'intent executed');
    return { outcome, committed: this.#commit(e, b.turn()) };
  }

  /**
   * Marks a verified decision as used; refuses one used before (`replayed`): a copy answered
   * again for the same intent while it is still valid, e.g. after a grant was revoked.
   */
  #useDecision(decision: Decision, now: number): void {
    for (const [id, expires] of this.#usedDecisions) {
      if (expires > now) break; // kept in the order they were used; near enough to expiry order
      this.#usedDecisions.delete(id);
    }
    const key = `${decision.authority} ${decision.id}`;
    if (this.#usedDecisions.has(key))
      throw new DecisionVerificationError('replayed', `decision ${decision.id} was used before; a decision is used once`);
    this.#usedDecisions.set(key, Date.parse(decision.expiresAt));
  }

  /** Records a human's refusal of a pending intent: an `approval` fact citing the pending decision. */
  #refusePending(e: Entry, intent: Intent, digest: string, terms: PendingTerms, by: string, reason: string): Applied {
    const b = this.#builder(e);
    const { outcome } = this.#denyPending(
      b,
      intent,
      digest,
      terms,
      { type: FactType.approval, origin: Origin.operator, data: { approved: false, by, reason, decisionId: terms.decision.id } },
      { code: 'approval_refused', message: `${by} refused: ${reason}` },
    );
    return { outcome, committed: this.#commit(e, b.turn()) };
  }

  /**
   * Ends a pending intent denied, in the turn `b`: the fact that ends it (citing the pending
   * decision), the pending record deleted, and the denied outcome with `reason`.
   */
  #denyPending(
    b: TurnBuilder,
    intent: Intent,
    digest: string,
    terms: PendingTerms,
    ending: Pick<FactDraft, 'type' | 'origin' | 'data'>,
    reason: Reason,
  ): { outcome: Outcome; seq: number } {
    const f = b.fact({ ...ending, intentId: intent.id, ...(terms.decisionSeq > 0 ? { causes: [terms.decisionSeq] } : {}) });
    b.pendingDelete = intent.id;
    const outcome: Outcome = {
      v: 1,
      status: 'denied',
      intentId: intent.id,
      actor: intent.target,
      decisionId: terms.decision.id,
      reasons: [reason],
      seq: f.seq,
    };
    b.outcome = { intentId: intent.id, digest, outcome };
    return { outcome, seq: f.seq };
  }

  /**
   * Creates a new actor of a registered kind. Origin `operator` (or `runtime`).
   *
   * With `ifAbsent`, an actor that already exists is returned as it is (`created: false`, no
   * new fact, not activated here) — if it was spawned with the same input (after the kind's
   * schema; compared as canonical JSON). Whatever state it is in now, `stopped` included: the
   * caller reads `status`. Two callers at once, on one node or on two, leave one
   * `actor.started` fact: the actor's lease and the chain's fence let one spawn through, the
   * other waits (bounded) until the actor is in the store and returns it.
   * @throws AlreadyExistsError when it exists and `ifAbsent` is not set.
   * @throws ExistingDiffersError when it exists with another input (`ifAbsent`).
   */
  async spawn(address: string, input?: unknown, opts: { ifAbsent?: boolean; origin?: 'runtime' | 'operator' } = {}): Promise<Spawned> {
    const addr = parseAddress(address);
    const { kind } = splitAddress(addr);
    const def = this.#registry.get(kind);
    if (!def)
      throw new NotFoundError(
        `actor kind ${kind} (registered: ${this.#registry
          .list()
          .map((d) => d.kind)
          .join(', ')})`,
      );
    let parsedInput = input;
    if (def.input) {
      const r = def.input.safeParse(input);
      if (!r.success) throw new ValidationError(`invalid input for ${kind}`, zodIssues(r.error, 'input'));
      parsedInput = r.data;
    }
    assertUnicode(parsedInput, 'input', `invalid input for ${kind}`);
    const ifAbsent = opts.ifAbsent === true;
    const deadline = Date.now() + SPAWN_WAIT_MS;
    for (;;) {
      const r = await this.withActor(addr, () => this.#spawnTurn(addr, def, parsedInput, ifAbsent, opts.origin ?? Origin.operator));
      if (!('heldBy' in r)) return r;
      // ifAbsent, and the actor is held but not in the store yet: another process is spawning
      // it (or a spawn there just failed), or a spawn won the race just now; look again.
      if (Date.now() > deadline) {
        throw new IceError(
          'E_OWNERSHIP',
          `${addr} is held by ${r.heldBy} but not in the store after ${SPAWN_WAIT_MS} ms (a spawn there still running?); retry`,
          'retry',
        );
      }
      await new Promise((res) => setTimeout(res, 25));
    }
  }

  async #spawnTurn(
    addr: ActorAddress,
    def: ActorDefinition,
    input: unknown,
    ifAbsent: boolean,
    origin: 'runtime' | 'operator',
  ): Promise<Spawned | { heldBy: string }> {
    const kind = def.kind;
    const here = this.#entries.get(addr);
    if (here) {
      if (!ifAbsent) throw actorExists(addr);
      return this.#existing(addr, input, this.#info(here));
    }
    if (ifAbsent) {
      // Not activated: returning an existing actor leaves no fact behind (not even actor.restored).
      const rec = await this.store.latestSnapshot(addr);
      if (rec) return this.#existing(addr, input, storedInfo(addr, rec));
    }
    const own = await this.ownership.claim(addr);
    if (own.kind === 'elsewhere') {
      if (ifAbsent) return { heldBy: own.owner };
      throw actorExists(addr, own.owner);
    }
    if (own.kind === 'unknown') throw new IceError('E_OWNERSHIP', own.reason, 'retry');
    let committed: Promise<void>;
    let entry: Entry;
    try {
      const loaded = await this.store.load(addr);
      if (loaded.head.seq > 0) {
        if (!ifAbsent) throw actorExists(addr);
        // Committed between the look above and the claim: look again.
        await this.ownership.release(addr).catch(() => {});
        return { heldBy: this.node };
      }
      const atMs = this.#clock.now();
      const timers = new ActorTimers();
      timers.at = atMs; // the initial state's timers are due from the actor.started fact's time
      const emits = { live: true, got: [] as Array<ProposeEmitted | EffectEmitted> }; // the initial state's entry actions may propose
      const actor = this.#create(addr, def.machine, timers, { input }, emits);
      const snap = actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (snap.status === 'error') {
        actor.stop();
        throw new ValidationError(`${addr} failed to start: ${ensureError(snap.error).message}`, []);
      }
      const state = stateToString(snap.value);
      const status = snap.status === 'done' ? 'done' : 'active';
      entry = {
        address: addr,
        def,
        actor,
        status,
        state,
        head: { ...EMPTY_HEAD },
        persisted: actor.getPersistedSnapshot(),
        timers,
        timersPersisted: none(),
        failures: none(),
        restartAt: undefined,
        outbox: none(),
        emits,
        effects: none(),
        lastUsed: 0,
        pending: 0,
        uncommitted: new Map(),
        pendingUncommitted: new Map(),
      };
      entry.lastUsed = this.#clock.now();
      const started = emits.got;
      const b = this.#builder(entry, atMs);
      emits.got = started;
      b.fact({ type: FactType.actorStarted, origin, data: { kind, version: def.version, input: input ?? null, state, node: this.node } });
      this.#advance(entry, b, status, state);
      this.#restored.add(addr);
      this.#entries.set(addr, entry);
      committed = this.#commit(entry, b.turn());
    } catch (err) {
      await this.ownership.release(addr).catch(() => {});
      throw err;
    }
    try {
      await committed;
    } catch (err) {
      // The chain's fence refused: another writer started this actor first.
      if (!ifAbsent || !(err instanceof ConflictError)) throw err;
      await this.ownership.release(addr).catch(() => {});
      return { heldBy: this.node };
    }
    this.#log.info({ actor: addr, state: entry.state }, 'actor started');
    return { ...this.#info(entry), created: true };
  }

  /** An existing actor for `spawn(…, { ifAbsent })`, if it was started with this input. */
  async #existing(addr: ActorAddress, input: unknown, info: ActorInfo): Promise<Spawned> {
    const [first] = await this.store.chainFacts(addr, 1, 1);
    if (first?.type === FactType.actorStarted) {
      const was: unknown = (first.data as { input?: unknown }).input ?? null;
      const diff = firstDifference(was, input ?? null, 'input');
      if (diff) {
        throw new ExistingDiffersError(
          'actor',
          addr,
          diff,
          `actor ${addr} exists, spawned with another input (${diff.field}: ${show(diff.existing)}, not ${show(diff.requested)}); ` +
            "an actor's input is fixed at spawn: change it through intents, or spawn another address",
        );
      }
    }
    return { ...info, created: false };
  }

  /** Sends a runtime-only event (e.g. RUNTIME_ABORT). Origin `runtime`; no intent, no grant. */
  async signal(address: string, event: { type: string } & Record<string, unknown>, reason: string): Promise<Fact | { forward: string }> {
    const r = await this.withActor(address, async (): Promise<{ forward: string } | { fact: Fact; committed: Promise<void> }> => {
      const where = await this.locate(address);
      if (where.kind === 'elsewhere') return { forward: where.owner };
      if (where.kind === 'missing') throw new NotFoundError(`actor ${address}`);
      const e = where.entry;
      const schema = e.def.runtimeEvents[event.type];
      if (!schema)
        throw new ValidationError(`${e.def.kind} has no runtime event ${event.type}`, [
          { path: 'type', code: 'unknown_event', message: event.type, expected: Object.keys(e.def.runtimeEvents).join(', ') },
        ]);
      const { type, ...params } = event;
      const parsed = schema.safeParse(params);
      if (!parsed.success) throw new ValidationError(`invalid ${type}`, zodIssues(parsed.error, 'event'));
      const ev = { ...(parsed.data as object), type };
      assertUnicode({ event: ev, reason }, '', `invalid ${type}`);
      const snap = e.actor.getSnapshot() as { can(ev: unknown): boolean };
      if (e.status !== 'active' || !snap.can(ev)) throw new ConflictError(`${address} in state ${e.state} cannot take ${type}`);
      const from = e.state;
      const b = this.#builder(e);
      e.actor.send(ev);
      const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (after.status === 'error') {
        this.#revert(e);
        throw ensureError(after.error);
      }
      const to = stateToString(after.value);
      const f = b.fact({ type: FactType.transition, origin: Origin.runtime, data: { from, to, event: ev, reason } });
      this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
      return { fact: f, committed: this.#commit(e, b.turn()) };
    });
    if ('forward' in r) return { forward: r.forward };
    await r.committed;
    return r.fact;
  }

  /**
   * Fires an actor's timers that are due, each as a turn of its own: a `transition` fact with
   * origin `runtime` and `data.timer` (source, id, dueAt, how late), committed like any
   * transition. A passivated actor is activated for it. Nothing happens for an actor another
   * node owns (its owner fires them) or that no longer exists. A transition that throws puts
   * the actor in `failed` (see `#failTurn`).
   * @returns how many timers fired.
   */
  async fireTimers(address: string): Promise<number> {
    let fired = 0;
    // each turn's commit is awaited after the loop: held with its failure, never left unhandled
    let failure: unknown;
    const commits: Promise<void>[] = [];
    const commit = (p: Promise<void>) => void commits.push(p.catch((err: unknown) => void (failure ??= err)));
    const deliveries: Promise<void>[] = [];
    for (;;) {
      let step: 'fired' | 'done';
      try {
        step = await this.withActor(address, async () => {
          const where = await this.locate(address);
          if (where.kind !== 'here') {
            this.#timerSchedule.remove(address);
            return 'done';
          }
          const e = where.entry;
          const now = this.#clock.now();
          if (e.status === 'failed' && e.restartAt !== undefined) {
            if (e.restartAt > now) {
              this.#timerSchedule.set(address, e.restartAt);
              return 'done';
            }
            commit(this.#restartTurn(e, Origin.runtime, 'supervision'));
            return 'fired';
          }
          if (e.status === 'active') {
            for (const o of e.outbox) {
              const id = String(o.intent.id);
              if (o.held || o.retryAt > now || e.delivering?.has(id)) continue;
              (e.delivering ??= new Set()).add(id);
              deliveries.push(this.#deliver(address, id)); // outside this turn: it proposes, then takes its own
            }
            for (const x of e.effects) {
              if (x.held || x.retryAt > now || e.running?.has(x.id)) continue;
              (e.running ??= new Map()).set(x.id, new AbortController()); // taken; #runEffect sets its own
              deliveries.push(this.#runEffect(address, x.id));
            }
          }
          const t = e.status === 'active' ? e.timers.next() : undefined;
          if (!t || t.dueAt > now) {
            this.#timerSchedule.set(address, wakeOf(e));
            return 'done';
          }
          const b = this.#builder(e, now);
          const from = e.state;
          e.timers.fire(t.source, t.id);
          const timer = { source: t.source, id: t.id, dueAt: t.dueAt, lateMs: now - t.dueAt };
          const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
          if (after.status === 'error') {
            this.#revert(e);
            commit(this.#failTurn(e, b, ensureError(after.error), { timer }));
            return 'fired';
          }
          const to = stateToString(after.value);
          b.fact({ type: FactType.transition, origin: Origin.runtime, data: { from, to, event: t.event, timer } });
          this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
          commit(this.#commit(e, b.turn()));
          return 'fired';
        });
      } catch (err) {
        const e = ensureError(err);
        const permanent =
          e instanceof NotFoundError ||
          e instanceof JournalBrokenError ||
          e instanceof VersionError ||
          (e instanceof IceError && e.code === 'E_RESTORE');
        if (!permanent) {
          // the store, the network, an ownership claim: try again in a moment
          this.#log.warn({ actor: address, err: e.message }, 'could not fire the timers of an actor now; retrying');
          this.#timerSchedule.set(address, this.#clock.now() + 1000);
          break;
        }
        // Not restorable (its kind is not registered here, a broken chain, a snapshot or
        // version it cannot restore): for that actor alone, said once by this process. A
        // failed restore has recorded its own fact; the others are recorded here.
        this.#timerSchedule.remove(address);
        this.#unwakeable.add(address);
        this.#log.error({ actor: address, err: e.message }, 'could not fire the timers of an actor');
        const recorded = e instanceof VersionError || (e instanceof IceError && e.code === 'E_RESTORE');
        if (!recorded) {
          await this.record([
            {
              type: FactType.actorFailed,
              origin: Origin.runtime,
              data: { actor: address, message: `its timers cannot fire: ${e.message}`, node: this.node },
            },
          ]).catch(() => {});
        }
        break;
      }
      if (step === 'done') break;
      fired++;
    }
    await Promise.all([...commits, ...deliveries]);
    if (failure !== undefined) throw ensureError(failure);
    return fired;
  }

  /** Fires the due timers of every actor the schedule knows (tests with a hand-moved clock). */
  async fireDueTimers(): Promise<number> {
    const now = this.#clock.now();
    let n = 0;
    for (const address of this.#timerSchedule.dueBy(now)) n += await this.fireTimers(address);
    return n;
  }

  /** Adds actors with timers found in the store (passivated, or restarted from disk) to the schedule. */
  scheduleTimers(rows: Iterable<{ actor: string; dueAt: number }>): void {
    for (const r of rows) {
      if (this.#entries.has(r.actor) || this.#unwakeable.has(r.actor)) continue; // in memory: its own timers are scheduled
      const cur = this.#timerSchedule.get(r.actor);
      if (cur === undefined || r.dueAt < cur) this.#timerSchedule.set(r.actor, r.dueAt);
    }
  }

  /** Pending timers of the actors in memory here, earliest first. */
  activeTimers(): Array<TimerRecord & { actor: string }> {
    const out: Array<TimerRecord & { actor: string }> = [];
    for (const e of this.#entries.values()) for (const t of e.timersPersisted) out.push({ ...t, actor: e.address });
    return out.sort((a, b) => a.dueAt - b.dueAt);
  }

  /**
   * Ends a turn in which the actor's machine threw outside an intent (a timer): the actor
   * (already back at its last snapshot) goes to `failed`, with an `actor.failed` fact on its
   * own chain naming the error and what ran. It takes no intents until restarted.
   */
  #failTurn(
    e: Entry,
    b: TurnBuilder,
    err: Error,
    cause: { timer?: Record<string, unknown>; outcomeOf?: string; effectOf?: string; child?: Record<string, unknown> },
  ): Promise<void> {
    const t = cause.timer;
    // the timer that threw is not fired again: it is gone with the failure (the fact keeps it)
    if (t) e.timers.cancel(String(t.source), String(t.id));
    const sup = e.def.supervision ?? DEFAULT_SUPERVISION;
    const now = Date.parse(b.at);
    e.failures = e.failures.filter((at) => at > now - sup.withinMs);
    e.failures.push(now);
    const n = e.failures.length;
    e.restartAt =
      sup.strategy === 'restart' && n <= sup.maxRestarts ? now + Math.min(sup.maxBackoffMs, sup.backoffMs * 2 ** (n - 1)) : undefined;
    const escalateTo = sup.escalate ? escalationTarget(sup.escalate.to, e) : undefined;
    const then =
      e.restartAt !== undefined
        ? { restartAt: new Date(e.restartAt).toISOString(), failures: n }
        : {
            failures: n,
            stays:
              sup.strategy === 'stop'
                ? 'supervision: stop'
                : sup.strategy === 'escalate'
                  ? `supervision: escalate to ${escalateTo ?? '(no target)'}`
                  : `${n} failures within ${sup.withinMs} ms`,
            ...(escalateTo !== undefined ? { escalatedTo: escalateTo } : {}),
          };
    b.fact({
      type: FactType.actorFailed,
      origin: Origin.runtime,
      data: { actor: e.address, message: err.message, state: e.state, node: this.node, ...cause, ...then },
    });
    this.#log.error({ actor: e.address, err: err.message, ...cause, ...then }, 'actor failed');
    const timers = e.timers.list();
    this.#advance(e, b, 'failed', e.state);
    e.timersPersisted = timers; // kept for a restart, not armed while failed
    b.snapshotOf(e);
    this.#timerSchedule.set(e.address, e.restartAt);
    const committed = this.#commit(e, b.turn());
    if (sup.escalate && escalateTo !== undefined) {
      const event = { type: sup.escalate.event, actor: e.address, message: err.message };
      // after the failure is durable, as a turn of the target's own (never inside this one)
      void committed.then(
        async () => {
          try {
            const r = await this.signal(escalateTo, event, `${e.address} failed`);
            if ('forward' in r) await this.#escalateElsewhere(r.forward, escalateTo, event, e.address);
          } catch (x) {
            this.#escalationFailed(e.address, escalateTo, x);
          }
        },
        () => {}, // the failure itself was not committed: nothing to escalate
      );
    }
    return committed;
  }

  /** How an escalation reaches a target another node owns (set by the runtime: a forwarded signal). */
  #escalateElsewhere: EscalationForwarder = (owner, to) =>
    Promise.reject(new Error(`${to} is owned by ${owner} and this host forwards no escalations`));

  setEscalationForwarder(fn: EscalationForwarder): void {
    this.#escalateElsewhere = fn;
  }

  #escalationFailed(from: string, to: string, err: unknown): void {
    const message = ensureError(err).message;
    this.#log.error({ actor: from, to, err: message }, 'a failure could not be escalated');
    void this.record([
      {
        type: FactType.actorFailed,
        origin: Origin.runtime,
        data: { actor: from, message: `escalation to ${to} failed: ${message}`, node: this.node },
      },
    ]).catch(() => {});
  }

  /**
   * Brings a failed actor back to `active` from the state its last good turn left (an
   * `actor.restarted` fact), with its pending timers. By its supervision policy (origin
   * `runtime`) or by hand (`ice actor restart`, origin `operator`).
   * @throws ConflictError when the actor is not failed.
   */
  async restartActor(
    address: string,
    opts: { by: string; reason?: string; origin?: 'runtime' | 'operator' },
  ): Promise<{ forward: string } | ActorInfo> {
    assertUnicode({ by: opts.by, reason: opts.reason }, '', 'invalid restart');
    const r = await this.withActor(address, async (): Promise<{ forward: string } | { info: ActorInfo; committed: Promise<void> }> => {
      const where = await this.locate(address);
      if (where.kind === 'elsewhere') return { forward: where.owner };
      if (where.kind === 'missing') throw new NotFoundError(`actor ${address}`);
      const e = where.entry;
      if (e.status !== 'failed') throw new ConflictError(`${address} is ${e.status}, not failed: there is nothing to restart`);
      return { info: this.#info(e), committed: this.#restartTurn(e, opts.origin ?? Origin.operator, opts.by, opts.reason) };
    });
    if ('forward' in r) return r;
    await r.committed;
    return this.local(address) ?? r.info;
  }

  #restartTurn(e: Entry, origin: 'runtime' | 'operator', by: string, reason?: string): Promise<void> {
    const b = this.#builder(e);
    b.fact({
      type: FactType.actorRestarted,
      origin,
      data: { by, state: e.state, failures: e.failures.length, ...(reason ? { reason } : {}) },
    });
    e.restartAt = undefined;
    this.#advance(e, b, 'active', e.state);
    this.#log.info({ actor: e.address, by, origin }, 'actor restarted');
    return this.#commit(e, b.turn());
  }

  /**
   * The intents the machine proposed in the turn being built (outbox.ts): each an
   * `intent.emitted` fact citing the fact that emitted it, and an outbox entry held until the
   * turn commits (then delivered). Its id is stable: the emitting seq and its place in the turn.
   */
  #emitIntents(e: Entry, b: TurnBuilder): void {
    const got = e.emits.got;
    e.emits.live = false;
    e.emits.got = [];
    const cause = b.seq;
    got.forEach((ev, n) => {
      if (ev.type === 'ice.effect') return this.#startEffect(e, b, ev, cause, n);
      const runId = ev.runId ?? b.runId;
      const intent: Record<string, unknown> = {
        v: 1,
        id: emittedIntentId(e.address, cause, n),
        proposer: actorPrincipal(e.address),
        target: ev.target,
        action: ev.action,
        params: ev.params ?? {},
        ...(runId !== undefined ? { runId } : {}),
        causationId: `${e.address}#${cause}`,
        ...(ev.rationale !== undefined ? { rationale: ev.rationale } : {}),
      };
      let f: Fact;
      try {
        // plain JSON: what a machine put in (undefined, functions) does not reach the journal
        const plain = JSON.parse(JSON.stringify(intent)) as Record<string, unknown>;
        f = b.fact({ type: FactType.intentEmitted, origin: Origin.runtime, causes: cause > 0 ? [cause] : [], data: { intent: plain } });
        e.outbox = [...e.outbox, { intent: plain, seq: f.seq, retryAt: Date.parse(b.at), held: true }];
      } catch (err) {
        // text that is not Unicode cannot be hashed: the intent is not made, the log says why
        this.#log.error({ actor: e.address, intent: intent.id, err: ensureError(err).message }, 'an emitted intent could not be recorded');
      }
    });
  }

  /** An effect the machine started in this turn: an `effect.started` fact and an entry held until the commit. */
  #startEffect(e: Entry, b: TurnBuilder, ev: EffectEmitted, cause: number, n: number): void {
    const id = effectId(e.address, cause, n);
    const state = stateToString((e.actor.getSnapshot() as { value: never }).value);
    try {
      const params = JSON.parse(JSON.stringify(ev.params ?? null)) as unknown;
      const f = b.fact({
        type: FactType.effectStarted,
        origin: Origin.runtime,
        causes: cause > 0 ? [cause] : [],
        data: { effect: { id, name: ev.name, params, state } },
      });
      e.effects = [...e.effects, { id, name: ev.name, params, seq: f.seq, state, attempts: 0, retryAt: Date.parse(b.at), held: true }];
    } catch (err) {
      this.#log.error({ actor: e.address, effect: ev.name, err: ensureError(err).message }, 'a started effect could not be recorded');
    }
  }

  /** Effects whose state the actor left in this turn: cancelled (a fact each), their attempt aborted. */
  #cancelLeftEffects(e: Entry, b: TurnBuilder): void {
    if (e.effects.length === 0) return;
    const now = stateToString((e.actor.getSnapshot() as { value: never }).value);
    // done or stopped for good ends its effects; a failed actor keeps them for its restart
    const done = e.status === 'done' || e.status === 'stopped';
    for (const x of [...e.effects]) {
      if (!done && stillIn(now, x.state)) continue;
      e.effects.splice(e.effects.indexOf(x), 1);
      b.fact({
        type: FactType.effectCancelled,
        origin: Origin.runtime,
        causes: [x.seq],
        data: { id: x.id, name: x.name, state: x.state, now },
      });
      e.running?.get(x.id)?.abort(new Error(`cancelled: ${e.address} left ${x.state}`));
    }
  }

  /**
   * Runs one attempt of an effect outside the actor's turn, then applies the result in a turn
   * of its own (`ice.effect.done.<name>` / `ice.effect.failed.<name>`, a transition fact with
   * `effectOf`), or schedules the next attempt.
   */
  async #runEffect(address: string, id: string): Promise<void> {
    const e0 = this.#entries.get(address);
    const x0 = e0?.effects.find((x) => x.id === id);
    if (!e0 || !x0) return;
    const def = e0.def.effects?.[x0.name];
    const cancel = new AbortController();
    (e0.running ??= new Map()).set(id, cancel);
    x0.attempts++;
    const result = def
      ? await attemptEffect(def, x0.params, { key: id, attempt: x0.attempts, actor: address }, cancel.signal)
      : ({ ok: false, error: `${e0.def.kind} declares no effect ${x0.name}`, final: true } as const);
    if (e0.running?.get(id) === cancel) e0.running.delete(id);
    try {
      const r = await this.withActor(address, async (): Promise<{ committed: Promise<void> } | undefined> => {
        const where = await this.locate(address);
        if (where.kind !== 'here') return undefined;
        const e = where.entry;
        const i = e.effects.findIndex((x) => x.id === id);
        if (i < 0 || cancel.signal.aborted) return undefined; // cancelled or applied meanwhile
        const x = e.effects[i]!;
        const now = this.#clock.now();
        const max = def?.retry.maxAttempts ?? 1;
        if (!result.ok && !result.final && x.attempts < max && def) {
          x.lastError = result.error;
          x.retryAt = now + Math.min(def.retry.maxBackoffMs, def.retry.backoffMs * 2 ** (x.attempts - 1));
          this.#log.warn({ actor: address, effect: x.name, id, attempt: x.attempts, err: result.error }, 'effect attempt failed; retrying');
          this.#timerSchedule.set(address, wakeOf(e));
          return undefined;
        }
        if (e.status !== 'active') return undefined; // applied when it is active again
        const b = this.#builder(e, now);
        const from = e.state;
        const event = result.ok
          ? { type: `ice.effect.done.${x.name}`, id, effect: x.name, output: result.output }
          : { type: `ice.effect.failed.${x.name}`, id, effect: x.name, error: { message: result.error, attempts: x.attempts } };
        e.effects.splice(i, 1);
        e.actor.send(event);
        const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
        if (after.status === 'error') {
          this.#revert(e);
          e.effects = e.effects.filter((y) => y.id !== id);
          return { committed: this.#failTurn(e, b, ensureError(after.error), { effectOf: id }) };
        }
        const to = stateToString(after.value);
        b.fact({
          type: FactType.transition,
          origin: Origin.runtime,
          causes: [x.seq],
          data: { from, to, event, effectOf: id, attempts: x.attempts },
        });
        this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
        return { committed: this.#commit(e, b.turn()) };
      });
      await r?.committed;
    } catch (err) {
      this.#log.warn({ actor: address, effect: id, err: ensureError(err).message }, 'an effect result was not applied; it runs again');
      const e = this.#entries.get(address);
      const x = e?.effects.find((y) => y.id === id);
      if (e && x) {
        x.retryAt = this.#clock.now() + 1000;
        this.#timerSchedule.set(address, wakeOf(e));
      }
    }
  }

  /** Effects of the actors in memory here that are started and not finished. */
  activeEffects(): Array<EffectEntry & { actor: string; running: boolean }> {
    const out: Array<EffectEntry & { actor: string; running: boolean }> = [];
    for (const e of this.#entries.values())
      for (const { held: _h, ...x } of e.effects) out.push({ ...x, actor: e.address, running: e.running?.has(x.id) === true });
    return out;
  }

  /** How an actor's intent is proposed (set by the runtime: its intake, which decides and routes it). */
  #proposeOut: (intent: Record<string, unknown>) => Promise<Outcome> = () =>
    Promise.resolve({ v: 1, status: 'failed', intentId: '', actor: '', error: { code: 'E_NO_RESPONDERS', message: 'no intake' } });

  setOutboundProposer(fn: (intent: Record<string, unknown>) => Promise<Outcome>): void {
    this.#proposeOut = fn;
  }

  /**
   * Delivers one outbox entry: proposes it (the same id every time: decided once), then, in a
   * turn of the proposing actor, applies its outcome as the event `ice.outcome.<status>` (a
   * `transition` fact with `outcomeOf`) and removes the entry. A pending outcome is applied
   * once and looked up again later; an outcome that says "try again" (no responders, timeout,
   * owner moving) is retried with backoff, never applied.
   */
  async #deliver(address: string, id: string): Promise<void> {
    const first = this.#entries.get(address)?.outbox.find((o) => o.intent.id === id);
    if (!first) return;
    try {
      const outcome = first.pending ? (await this.store.outcome(id))?.outcome : await this.#proposeOut(first.intent);
      const r = await this.withActor(address, async (): Promise<{ committed: Promise<void> } | undefined> => {
        const where = await this.locate(address);
        if (where.kind !== 'here') return undefined;
        const e = where.entry;
        const i = e.outbox.findIndex((o) => o.intent.id === id);
        if (i < 0) return undefined; // applied already
        const entry = e.outbox[i]!;
        const now = this.#clock.now();
        const retry = (ms: number) => {
          entry.retryAt = now + ms;
          this.#timerSchedule.set(address, wakeOf(e));
          return undefined;
        };
        if (!outcome || (outcome.status === 'pending' && entry.pending)) return retry(PENDING_POLL_MS);
        if (outcome.status === 'failed' && RETRY_CODES.has(outcome.error.code)) {
          const attempts = (this.#deliveryAttempts.get(id) ?? 0) + 1;
          this.#deliveryAttempts.set(id, attempts);
          return retry(Math.min(30_000, 250 * 2 ** Math.min(attempts, 7)));
        }
        this.#deliveryAttempts.delete(id);
        if (e.status !== 'active') return retry(PENDING_POLL_MS); // applied once it is active again
        const b = this.#builder(e, now);
        const from = e.state;
        const event = outcomeEvent(entry.intent, outcome);
        e.actor.send(event);
        const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
        const pending = outcome.status === 'pending';
        if (pending) {
          entry.pending = true;
          entry.retryAt = now + PENDING_POLL_MS;
        } else e.outbox.splice(i, 1);
        if (after.status === 'error') {
          this.#revert(e);
          // the outcome was applied (the machine threw on it), pending or not: as replay has it
          e.outbox = e.outbox.filter((o) => o.intent.id !== id);
          return { committed: this.#failTurn(e, b, ensureError(after.error), { outcomeOf: id }) };
        }
        const to = stateToString(after.value);
        b.fact({
          type: FactType.transition,
          origin: Origin.runtime,
          intentId: id,
          causes: [entry.seq],
          data: { from, to, event, outcomeOf: id, ...(pending ? { pending: true } : {}) },
        });
        this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
        return { committed: this.#commit(e, b.turn()) };
      });
      await r?.committed;
    } catch (err) {
      this.#log.warn({ actor: address, intent: id, err: ensureError(err).message }, 'an emitted intent was not delivered; retrying');
      const e = this.#entries.get(address);
      const entry = e?.outbox.find((o) => o.intent.id === id);
      if (e && entry) {
        entry.retryAt = this.#clock.now() + 1000;
        this.#timerSchedule.set(address, wakeOf(e));
      }
    } finally {
      this.#entries.get(address)?.delivering?.delete(id);
    }
  }

  /** Stops an actor for good: it keeps its snapshot and journal but takes no more intents. */
  async stopActor(address: string, reason: string, origin: 'runtime' | 'operator' = Origin.operator): Promise<void | { forward: string }> {
    assertUnicode({ reason }, '', 'invalid stop');
    const r = await this.withActor(address, async (): Promise<{ forward: string } | { committed: Promise<void> }> => {
      const where = await this.locate(address);
      if (where.kind === 'elsewhere') return { forward: where.owner };
      if (where.kind === 'missing') throw new NotFoundError(`actor ${address}`);
      const e = where.entry;
      if (e.status === 'stopped') return { committed: Promise.resolve() };
      const b = this.#builder(e);
      b.fact({ type: FactType.actorStopped, origin, data: { reason, state: e.state } });
      this.#advance(e, b, 'stopped', e.state);
      return { committed: this.#commit(e, b.turn()) };
    });
    if ('forward' in r) return { forward: r.forward };
    await r.committed;
    this.#entries.get(address)?.actor.stop();
  }

  /**
   * Writes facts with no actor on this process's runtime chain (grant changes, rejected
   * intents), with the grant records they change. Resolves once durable.
   */
  async record(drafts: Array<Omit<FactDraft, 'actor'>>, extra: { grants?: Grant[] } = {}): Promise<Fact[]> {
    const chain = this.runtimeChain;
    for (let attempt = 0; ; attempt++) {
      const r = await this.withActor(chain, async () => {
        this.#runtimeHead ??= await this.store.head(chain);
        const after = { ...this.#runtimeHead };
        const cursor = { ...after };
        const at = this.#now();
        const built = drafts.map((d) => chainFact(cursor, { ...d, actor: chain }, at));
        const turn: Turn = { chain, after, facts: built.map((x) => x.fact), bodies: built.map((x) => x.body), ...extra };
        if (this.#attest) turn.attestation = this.#attest(chain, cursor);
        this.#runtimeHead = cursor;
        const committed = this.store.commit(turn).then(
          () => this.#onCommitted(turn.facts),
          (err: unknown) => {
            this.#runtimeHead = undefined;
            throw err;
          },
        );
        return { facts: turn.facts, committed };
      });
      try {
        await r.committed;
        return r.facts;
      } catch (err) {
        // Another process wrote this runtime chain (a second node with the same name): read
        // its head again and retry once; anything else is the caller's.
        if (!(err instanceof ConflictError) || attempt >= 1) throw err;
      }
    }
  }

  /** Frees an idle actor's memory (and its ownership); its snapshot stays, the next use re-activates it. */
  async passivate(address: string): Promise<boolean> {
    // not while a turn is committing, an effect runs, an intent it proposed is on its way, or a
    // child effect (an XState promise) is in flight: that one would be lost
    const idle = (e: Entry | undefined) =>
      e !== undefined && e.pending === 0 && !e.running?.size && !e.delivering?.size && !effectsInFlight(e.actor);
    if (!idle(this.#entries.get(address)) || this.#turns.busy(address)) return false;
    return this.withActor(address, async () => {
      if (!idle(this.#entries.get(address))) return false;
      this.#drop(address);
      await this.ownership.release(address).catch(() => {});
      return true;
    });
  }

  /** Passivates every actor idle for `idleMs` or more; returns how many. */
  async passivateIdle(idleMs: number): Promise<number> {
    const cutoff = this.#clock.now() - idleMs;
    let n = 0;
    for (const [address, e] of [...this.#entries]) {
      if (e.lastUsed <= cutoff && (await this.passivate(address))) n++;
    }
    return n;
  }

  /** After a failed commit: forget in-memory state that ran ahead of the store. */
  evict(chains: Iterable<string>): void {
    for (const a of chains) {
      if (a === this.runtimeChain) this.#runtimeHead = undefined;
      this.#drop(a);
    }
  }

  stopAll(): void {
    this.#timerSchedule.stop();
    this.#unsubscribeLost();
    for (const a of [...this.#entries.keys()]) this.#drop(a);
  }

  // ------------------------------------------------------------------------------------------

  #now(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  #info(e: Entry): ActorInfo {
    return { address: e.address, kind: e.def.kind, state: e.state, status: e.status, seq: e.head.seq, owner: this.node, active: true };
  }

  /** Builds one turn of an actor's chain, starting at its current head. */
  #builder(e: Entry, atMs = this.#clock.now()): TurnBuilder {
    // a timer scheduled in this turn is due `delay` after the turn's time, also on replay
    e.timers.at = atMs;
    e.emits.live = true;
    e.emits.got = [];
    return new TurnBuilder(e.address, e.head, new Date(atMs).toISOString());
  }

  /** The entry moves on with the turn being built (the next turn chains onto it). */
  #advance(e: Entry, b: TurnBuilder, status: SnapshotRecord['status'], state: string): void {
    e.status = status;
    e.state = state;
    e.persisted = e.actor.getPersistedSnapshot();
    this.#emitIntents(e, b);
    this.#cancelLeftEffects(e, b);
    e.timersPersisted = status === 'active' ? e.timers.list() : none();
    b.snapshotOf(e);
    this.#timerSchedule.set(e.address, wakeOf(e));
  }

  /**
   * Commits a turn of an actor, unless this process is no longer sure it owns the actor.
   * The entry already reflects the turn; on failure it is dropped and reloads from the store.
   */
  #commit(e: Entry, turn: Turn): Promise<void> {
    if (turn.facts.length === 0) return Promise.resolve();
    if (!this.ownership.holds(e.address)) {
      this.#drop(e.address);
      return Promise.reject(
        new IceError('E_NOT_OWNER', `${this.node} is not sure it still owns ${e.address}; retry with the same id`, 'retry'),
      );
    }
    const last = turn.facts.at(-1)!;
    e.head = { seq: last.seq, hash: last.hash };
    // Every actor turn carries the snapshot after it: the store can serve the newest state
    // of any actor from its last turn alone.
    turn.snapshot ??= this.#record(e);
    if (this.#attest) turn.attestation = this.#attest(turn.chain, e.head);
    turn.stillSure = () => this.ownership.holds(e.address);
    e.pending++;
    const o = turn.outcome;
    let inFlight: { stored: StoredOutcome; committed: Promise<void> } | undefined;
    const pendingId = turn.pendingPut?.intentId ?? turn.pendingDelete;
    const pendingRec = turn.pendingPut ?? null;
    if (pendingId !== undefined) e.pendingUncommitted.set(pendingId, pendingRec);
    const settled = () => {
      e.pending--;
      // Once settled the store answers for it (committed), or it never happened (failed).
      if (o && e.uncommitted.get(o.intentId) === inFlight) e.uncommitted.delete(o.intentId);
      if (pendingId !== undefined && e.pendingUncommitted.get(pendingId) === pendingRec) e.pendingUncommitted.delete(pendingId);
    };
    const committed = this.store.commit(turn).then(
      () => {
        settled();
        // intents it emitted in this turn may go now (after the commit: never one that did not happen)
        let released = false;
        for (const o of [...e.outbox, ...e.effects])
          if (o.held && o.seq <= last.seq) {
            o.held = false;
            released = true;
          }
        if (released && this.#entries.get(e.address) === e) this.#timerSchedule.set(e.address, wakeOf(e));
        this.#onCommitted(turn.facts);
      },
      (err: unknown) => {
        settled();
        if (this.#entries.get(e.address) === e) this.#drop(e.address);
        throw err;
      },
    );
    if (o) {
      inFlight = { stored: o, committed };
      e.uncommitted.set(o.intentId, inFlight);
    }
    return committed;
  }

  #record(e: Entry): SnapshotRecord {
    return { ...snapshotRecord(e, e.head.seq, this.#now()), ...timerFields(e) };
  }

  /**
   * The first fact of an intent's turn: `intent.proposed`, or for an approval the `approval`
   * fact, which cites the pending decision (itself citing `intent.proposed`): `causes` lead
   * from every transition back to its proposal.
   */
  #proposed(b: TurnBuilder, intent: Intent, digest: string, opts: { approval?: ApprovalDraft }): Fact {
    const a = opts.approval;
    if (a) {
      return b.fact({
        type: FactType.approval,
        origin: Origin.operator,
        intentId: intent.id,
        ...(a.decisionSeq > 0 ? { causes: [a.decisionSeq] } : {}),
        data: {
          approved: true,
          by: a.by,
          ...(a.note ? { note: a.note } : {}),
          digest,
          decisionId: a.decisionId,
          count: a.count,
          quorum: a.quorum,
        },
      });
    }
    return b.fact({ type: FactType.intentProposed, origin: Origin.proposer, intentId: intent.id, data: { intent, digest } });
  }

  #create(
    address: string,
    machine: AnyStateMachine,
    timers: ActorTimers,
    opts: { input?: unknown; snapshot?: Snapshot<unknown> },
    emits?: Entry['emits'],
  ): AnyActorRef {
    // Observed from its creation while somebody listens (onInspect attaches the others later).
    const o: Observed | undefined = this.#inspectListeners.size > 0 ? { on: true } : undefined;
    const actor = createActor(machine, {
      id: address,
      clock: timers.clock,
      ...(opts.snapshot !== undefined ? { snapshot: opts.snapshot } : { input: opts.input }),
      ...(o ? { inspect: (ev: InspectionEvent) => o.on && this.#inspected(address, ev) } : {}),
    });
    timers.attach(actor);
    // intents the machine proposes (outbox.ts): kept while a live turn is built, never on replay
    if (emits) {
      // one listener for both (a listener per event type costs each actor a set of its own)
      actor.on('*', (ev: unknown) => emits.live && (isProposeEmitted(ev) || isEffectEmitted(ev)) && void emits.got.push(ev));
    }
    // a child's event outside a turn becomes a turn of its own (children.ts)
    const relay = watchChildren(actor, timers, (c) => this.#childEvent(address, actor, c));
    if (o) this.#inspecting.set(actor, o);
    // Without an error observer XState rethrows an action's error asynchronously and
    // would crash the process; errors are handled through the snapshot status instead.
    actor.subscribe({ error: () => {} });
    relay.gate(() => actor.start());
    return actor;
  }

  /** Loads an actor from the store: its snapshot, then every transition after it. */
  async #activate(address: string): Promise<Entry | undefined> {
    const loaded = await this.store.load(address);
    if (loaded.head.seq === 0) return undefined;
    // Every fact replayed is checked against its hash first, in both modes: a changed fact
    // never steers a machine, and its chain is never appended to.
    const first = loaded.facts[0];
    if (first) {
      const checked = checkChain(loaded.facts, { seq: first.seq - 1, hash: first.prev });
      if (!checked.ok) throw new JournalBrokenError(address, checked.brokenAt, 'hash', checked.reason);
    }
    const { kind } = splitAddress(parseAddress(address));
    const def = this.#registry.get(loaded.snapshot?.kind ?? kind);
    if (!def) throw new NotFoundError(`actor kind ${loaded.snapshot?.kind ?? kind} is not registered on ${this.node}`);
    let actor: AnyActorRef | undefined;
    let status: SnapshotRecord['status'] = loaded.snapshot?.status ?? 'active';
    let replayed = 0;
    const timers = new ActorTimers();
    let lostTimers: TimerRecord[] = [];
    const failures: number[] = [...(loaded.snapshot?.failures ?? [])];
    let restartAt: number | undefined;
    const emits = { live: false, got: [] as Array<ProposeEmitted | EffectEmitted> };
    const outbox: OutboxEntry[] = [...(loaded.snapshot?.outbox ?? [])].map((o) => ({ ...o }));
    const effects: EffectEntry[] = [...(loaded.snapshot?.effects ?? [])].map((x) => ({ ...x, attempts: 0 }));
    let restorable: Restorable | undefined;
    let lost: LostChild[] = [];
    const lostBefore = new Set<string>();
    try {
      // Migrated first when stored by a lower version (src/host/migrations.ts); the facts after
      // the snapshot are replayed on the running machine.
      if (loaded.snapshot) {
        restorable = restorableSnapshot(address, def, loaded.snapshot);
        timers.at = Date.parse(loaded.snapshot.updatedAt);
        // children XState would re-run or cannot rebuild are taken out, and recorded below
        const kept = withoutLostChildren(def.machine, restorable.snapshot);
        lost = kept.lost;
        actor = this.#create(address, def.machine, timers, { snapshot: kept.snapshot as Snapshot<unknown> }, emits);
        lostTimers = timers.restore(loaded.snapshot.timers ?? []);
      }
      for (const f of loaded.facts) {
        // replayed as it ran: timers scheduled by a fact are due from the fact's time
        timers.at = Date.parse(f.at);
        if (f.type === FactType.actorStarted && !actor) {
          checkStartedVersion(address, def, f);
          actor = this.#create(address, def.machine, timers, { input: f.data.input ?? undefined }, emits);
          status = 'active';
        } else if (f.type === FactType.effectStarted) {
          const x = f.data.effect as { id: string; name: string; params?: unknown; state: string };
          effects.push({
            id: x.id,
            name: x.name,
            params: x.params ?? null,
            seq: f.seq,
            state: x.state,
            attempts: 0,
            retryAt: Date.parse(f.at),
          });
        } else if (f.type === FactType.effectCancelled) {
          const i = effects.findIndex((x) => x.id === f.data.id);
          if (i >= 0) effects.splice(i, 1);
        } else if (f.type === FactType.transition && actor && typeof f.data.effectOf === 'string') {
          // an effect's result: applied once
          actor.send(f.data.event);
          replayed++;
          const i = effects.findIndex((x) => x.id === f.data.effectOf);
          if (i >= 0) effects.splice(i, 1);
        } else if (f.type === FactType.intentEmitted) {
          outbox.push({ intent: f.data.intent as Record<string, unknown>, seq: f.seq, retryAt: Date.parse(f.at) });
        } else if (f.type === FactType.transition && actor && typeof f.data.outcomeOf === 'string') {
          // an outcome of an intent it proposed: applied once; a pending one keeps it in the outbox
          actor.send(f.data.event);
          replayed++;
          const i = outbox.findIndex((o) => o.intent.id === f.data.outcomeOf);
          if (i >= 0 && f.data.pending === true) outbox[i] = { ...outbox[i]!, pending: true };
          else if (i >= 0) outbox.splice(i, 1);
        } else if (f.type === FactType.transition && actor) {
          const t = timerOf(f.data.timer);
          // a timer's firing delivers it as XState would (and forgets it); any other event is sent
          if (!t || !timers.fire(t.source, t.id)) sendRecorded(actor, f.data);
          replayed++;
        } else if (f.type === FactType.childLost && f.data.event === undefined) {
          lostBefore.add(String(f.data.child));
        } else if (f.type === FactType.actorStopped) {
          status = 'stopped';
        } else if (f.type === FactType.actorFailed) {
          // failed outside an intent: the timer that threw is gone with it
          status = 'failed';
          failures.push(Date.parse(f.at));
          const t = timerOf(f.data.timer);
          if (t) timers.cancel(t.source, t.id);
          // an outcome it threw on was applied (and is gone from its outbox)
          if (typeof f.data.outcomeOf === 'string') {
            const i = outbox.findIndex((o) => o.intent.id === f.data.outcomeOf);
            if (i >= 0) outbox.splice(i, 1);
          }
          restartAt = typeof f.data.restartAt === 'string' ? Date.parse(f.data.restartAt) : undefined;
        } else if (f.type === FactType.actorRestarted) {
          status = 'active';
          restartAt = undefined;
        }
      }
      if (loaded.facts.length === 0 && loaded.snapshot?.status === 'failed') restartAt = loaded.snapshot.wakeAt;
      if (!actor) throw new JournalBrokenError(address, 1, 'gap', 'no snapshot and no actor.started fact');
      const snap = actor.getSnapshot() as { status: string; error?: unknown };
      if (snap.status === 'error') throw ensureError(snap.error);
      if (snap.status === 'done' && status === 'active') status = 'done';
    } catch (err) {
      timers.muted = true;
      actor?.stop();
      if (err instanceof JournalBrokenError) throw err;
      this.#log.error({ actor: address, err }, 'actor failed to restore');
      await this.record([
        {
          type: FactType.actorFailed,
          origin: Origin.runtime,
          data: { actor: address, message: ensureError(err).message, node: this.node },
        },
      ]).catch(() => {});
      if (err instanceof VersionError) throw err;
      throw new IceError('E_RESTORE', `${address} failed to restore: ${ensureError(err).message}`, 'terminal');
    }
    const snap = actor.getSnapshot() as { value: never };
    const entry: Entry = {
      address: address as ActorAddress,
      def,
      actor,
      status,
      state: stateToString(snap.value),
      head: { ...loaded.head },
      persisted: actor.getPersistedSnapshot(),
      timers,
      timersPersisted: status === 'active' ? timers.list() : [],
      // most actors have none of these: they share one empty array until they do
      failures: failures.length > 0 ? failures : none(),
      restartAt,
      outbox: outbox.length > 0 ? outbox : none(),
      emits,
      effects: effects.length > 0 ? effects : none(),
      lastUsed: this.#clock.now(),
      pending: 0,
      uncommitted: new Map(),
      pendingUncommitted: new Map(),
    };
    if (status === 'failed') entry.timersPersisted = timers.list();
    this.#entries.set(address, entry);
    this.#timerSchedule.set(address, wakeOf(entry));
    const migrated = restorable?.migrated === true;
    lost = lost.filter((l) => !lostBefore.has(l.path));
    if (this.#restored.has(address) && replayed === 0 && !migrated && lostTimers.length === 0 && lost.length === 0) return entry;
    this.#restored.add(address);
    const b = this.#builder(entry);
    if (migrated)
      b.fact({
        type: FactType.actorMigrated,
        origin: Origin.runtime,
        data: { from: restorable!.from, to: restorable!.to, machine: def.machine.id },
      });
    b.fact({
      type: FactType.actorRestored,
      origin: Origin.runtime,
      data: {
        fromSeq: loaded.snapshot?.seq ?? 0,
        replayed,
        state: entry.state,
        node: this.node,
        ...(entry.timersPersisted.length > 0 ? { timers: entry.timersPersisted.length } : {}),
        // timers of a child that did not come back: recorded, never silently dropped
        ...(lostTimers.length > 0 ? { lostTimers: lostTimers.map((t) => ({ source: t.source, id: t.id, dueAt: t.dueAt })) } : {}),
      },
    });
    b.snapshotOf(entry);
    const failedTurn = this.#childrenLost(entry, b, lost);
    // Not awaited: the next turn chains behind it; if it fails, the entry is dropped.
    (failedTurn ?? this.#commit(entry, b.turn())).catch((err: unknown) => {
      // not restored after all: the next activation records it (and replays what this one did)
      this.#restored.delete(address);
      this.#log.warn({ actor: address, err }, 'restored fact not committed');
    });
    return entry;
  }

  /**
   * A child's event that reached the tree outside a turn (children.ts): delivered in a turn
   * of the actor, a `transition` fact with `data.child`. Dropped when the actor it was sent
   * in is no longer the one in memory (passivated, reverted, lost), or is not active.
   */
  #childEvent(address: string, actor: AnyActorRef, c: ChildEvent): void {
    this.withActor(address, (): { committed: Promise<void> } | undefined => {
      const e = this.#entries.get(address);
      if (e?.actor === actor && e.status === 'failed') {
        // a failed actor takes nothing until restarted: what its child delivered is recorded as lost
        const b = this.#builder(e);
        const reason = `its event ${c.event.type} arrived while ${address} was failed: not delivered`;
        b.fact({
          type: FactType.childLost,
          origin: Origin.runtime,
          data: { child: c.source, src: liveChild(actor, c.source)?.src ?? '', reason, event: c.event.type },
        });
        this.#log.warn({ actor: address, child: c.source, event: c.event.type }, 'event of a child not delivered: its actor is failed');
        return { committed: this.#commit(e, b.turn()) };
      }
      if (!e || e.actor !== actor || e.status !== 'active') {
        // its actor was stopped, passivated, reverted or lost meanwhile: XState would not deliver it either
        this.#log.warn({ actor: address, child: c.source, event: c.event.type }, 'event of a child dropped: its actor is not active here');
        return undefined;
      }
      if (!refAt(e.actor, c.target)) {
        // the child it went to is gone (its state was left meanwhile): nothing happens, nothing to record
        this.#log.debug({ actor: address, child: c.source, target: c.target, event: c.event.type }, 'event of a child: its target is gone');
        return undefined;
      }
      e.lastUsed = this.#clock.now();
      const b = this.#builder(e);
      const from = e.state;
      const event = journalEvent(c.event);
      deliverTo(e.actor, c.target, event);
      const where = { child: c.source, ...(c.target !== '' ? { target: c.target } : {}) };
      const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (after.status === 'error') {
        this.#revert(e);
        return { committed: this.#failTurn(e, b, ensureError(after.error), { child: { ...where, event: event.type } }) };
      }
      const to = stateToString(after.value);
      b.fact({ type: FactType.transition, origin: Origin.runtime, data: { from, to, event, ...where } });
      this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
      return { committed: this.#commit(e, b.turn()) };
    }).then(
      (r) => r?.committed.catch((err: unknown) => this.#log.warn({ actor: address, err }, 'child event not committed')),
      (err: unknown) => this.#log.error({ actor: address, err }, 'child event not recorded'),
    );
  }

  /**
   * Records, in the restore turn `b`, the children the stored snapshot held that XState cannot
   * bring back: a `child.lost` fact each, then its parent's `xstate.error.actor.<id>` event as a
   * transition. Returns the failure's commit if a parent threw on it (the actor is failed).
   */
  #childrenLost(e: Entry, b: TurnBuilder, lost: readonly LostChild[]): Promise<void> | undefined {
    for (const l of lost) {
      this.#log.warn({ actor: e.address, child: l.path, src: l.src }, 'child lost on restore');
      b.fact({ type: FactType.childLost, origin: Origin.runtime, data: { child: l.path, src: l.src, reason: l.reason } });
      if (e.status !== 'active') continue;
      const from = e.state;
      const event = lostEvent(l);
      const where = { child: l.path, ...(l.parent !== '' ? { target: l.parent } : {}) };
      if (!deliverTo(e.actor, l.parent, event)) continue;
      const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (after.status === 'error') {
        this.#revert(e);
        return this.#failTurn(e, b, ensureError(after.error), { child: { ...where, event: event.type } });
      }
      const to = stateToString(after.value);
      b.fact({ type: FactType.transition, origin: Origin.runtime, data: { from, to, event, ...where } });
      this.#advance(e, b, after.status === 'done' ? 'done' : 'active', to);
    }
    return undefined;
  }

  /** Back to the actor as its last turn left it (a transition threw): its snapshot and its timers. */
  #revert(e: Entry): void {
    e.timers.muted = true;
    e.actor.stop();
    const timers = new ActorTimers();
    timers.at = this.#clock.now();
    e.emits.got = []; // what the failed transition emitted never happened
    e.actor = this.#create(e.address, e.def.machine, timers, { snapshot: e.persisted }, e.emits);
    e.timers = timers;
    timers.restore(e.timersPersisted);
  }

  #drop(address: string): void {
    const e = this.#entries.get(address);
    if (!e) return;
    this.#entries.delete(address);
    e.timers.muted = true;
    for (const c of e.running?.values() ?? []) c.abort(new Error(`${address} left this node's memory`));
    try {
      e.actor.stop();
    } catch {
      // already stopped
    }
  }
}

/**
 * An actor's inspection observer: `on` while somebody listens. `sub` when it was attached
 * after creation (it can then be detached); one given at creation stays, switched off.
 */
interface Observed {
  on: boolean;
  sub?: { unsubscribe(): void };
}

/** The facts and records of one turn of one chain, chained as they are added. */
class TurnBuilder {
  readonly chain: string;
  readonly after: ChainHead;
  readonly #cursor: ChainHead;
  readonly #at: string;
  /** The turn's time (ISO): every fact of the turn carries it. */
  get at(): string {
    return this.#at;
  }
  /** Seq of the last fact added (the head the turn leaves so far). */
  get seq(): number {
    return this.#cursor.seq;
  }
  /** The run of the intent whose turn this is: intents the machine emits in it belong to it too. */
  runId: string | undefined;
  readonly facts: Fact[] = [];
  readonly bodies: string[] = [];
  outcome: Turn['outcome'];
  pendingPut: Turn['pendingPut'];
  pendingDelete: Turn['pendingDelete'];
  grants: Turn['grants'];
  snapshot: SnapshotRecord | undefined;

  constructor(chain: string, head: ChainHead, at: string) {
    this.chain = chain;
    this.after = { ...head };
    this.#cursor = { ...head };
    this.#at = at;
  }

  fact(draft: Omit<FactDraft, 'actor'>): Fact {
    const { fact, body } = chainFact(this.#cursor, { ...draft, actor: this.chain }, this.#at);
    this.facts.push(fact);
    this.bodies.push(body);
    return fact;
  }

  /** The actor's snapshot after this turn, at the turn's last seq. */
  snapshotOf(e: Entry): void {
    this.snapshot = { ...snapshotRecord(e, this.#cursor.seq, this.#at), ...timerFields(e) };
  }

  turn(): Turn {
    return {
      chain: this.chain,
      after: this.after,
      facts: this.facts,
      bodies: this.bodies,
      ...(this.snapshot ? { snapshot: this.snapshot } : {}),
      ...(this.outcome ? { outcome: this.outcome } : {}),
      ...(this.pendingPut ? { pendingPut: this.pendingPut } : {}),
      ...(this.pendingDelete ? { pendingDelete: this.pendingDelete } : {}),
      ...(this.grants ? { grants: this.grants } : {}),
    };
  }
}

/** How long `spawn(…, { ifAbsent })` waits for an actor another process is spawning. */
const SPAWN_WAIT_MS = 5000;

const show = (v: unknown): string => (v === undefined ? 'none' : JSON.stringify(v));

function actorExists(addr: string, owner?: string): AlreadyExistsError {
  return new AlreadyExistsError(
    'actor',
    addr,
    `actor ${addr} already exists${owner ? ` and is owned by ${owner}` : ''}; ` +
      'to spawn it only when absent, use rt.spawn(address, input, { ifAbsent: true }) (admin: spawn with ifAbsent: true)',
  );
}

/**
 * The first place two JSON values differ (`path` for the whole value, `path.key`, `path.0`),
 * or undefined when they are equal as canonical JSON.
 */
export function firstDifference(
  a: unknown,
  b: unknown,
  path: string,
): { field: string; existing: unknown; requested: unknown } | undefined {
  if (canonicalJson(a) === canonicalJson(b)) return undefined;
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const d = firstDifference(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}.${i}`);
      if (d) return d;
    }
  }
  return { field: path, existing: a, requested: b };
}

function failed(intent: Intent, code: string, message: string, seq?: number): Outcome {
  return {
    v: 1,
    status: 'failed',
    intentId: intent.id,
    actor: intent.target,
    error: { code, message },
    ...(seq !== undefined ? { seq } : {}),
  };
}

export function eventOf(intent: Intent, def: ActorDefinition): { type: string } & Record<string, unknown> {
  const schema = def.events[intent.action];
  const params = schema ? (schema.parse(intent.params) as Record<string, unknown>) : intent.params;
  return { ...params, type: intent.action };
}

/** An actor as its stored snapshot describes it (not in this process's memory). */
function storedInfo(address: string, rec: SnapshotRecord): ActorInfo {
  return { address, kind: rec.kind, state: rec.state, status: rec.status, seq: rec.seq, owner: '', active: false };
}

/** The `data.timer` of a timer's transition fact, if it is one. */
function timerOf(v: unknown): { source: string; id: string } | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { source, id } = v as Record<string, unknown>;
  return typeof source === 'string' && typeof id === 'string' ? { source, id } : undefined;
}

/** When an actor next needs waking: its earliest timer (while active), or its restart (failed). */
function wakeOf(e: Entry): number | undefined {
  if (e.status === 'failed') return e.restartAt;
  if (e.status !== 'active') return undefined;
  let at = e.timersPersisted[0]?.dueAt;
  for (const o of e.outbox) if (!o.held && (at === undefined || o.retryAt < at)) at = o.retryAt;
  for (const x of e.effects) if (!x.held && !e.running?.has(x.id) && (at === undefined || x.retryAt < at)) at = x.retryAt;
  return at;
}

/** The timer fields of a snapshot record: pending timers and when the actor next needs waking. */
function timerFields(e: Entry): Pick<SnapshotRecord, 'timers' | 'wakeAt' | 'failures' | 'outbox' | 'effects'> {
  // stored, an outbox entry or a started effect is committed: due (after a crash, at once)
  let wakeAt = wakeOf(e);
  for (const o of [...e.outbox, ...e.effects]) if (wakeAt === undefined || o.retryAt < wakeAt) wakeAt = o.retryAt;
  return {
    ...(e.timersPersisted.length > 0 ? { timers: e.timersPersisted } : {}),
    ...(e.outbox.length > 0 ? { outbox: e.outbox.map(({ held: _h, ...o }) => o) } : {}),
    ...(e.effects.length > 0 ? { effects: e.effects.map(({ held: _h, ...x }) => x) } : {}),
    ...(wakeAt !== undefined ? { wakeAt } : {}),
    ...(e.failures.length > 0 ? { failures: e.failures } : {}),
  };
}

/** Sends an escalation's event to `to` on the node `owner` (the runtime forwards a `signal`). */
export type EscalationForwarder = (
  owner: string,
  to: string,
  event: { type: string } & Record<string, unknown>,
  from: string,
) => Promise<unknown>;

/** The address a failure escalates to, or undefined when the target function gives none (or throws). */
function escalationTarget(to: EscalationTarget, e: Entry): string | undefined {
  if (typeof to === 'string') return to;
  try {
    return to({ address: e.address, context: (e.actor.getSnapshot() as { context?: unknown }).context }) ?? undefined;
  } catch {
    return undefined;
  }
}

/** How long before a pending outcome (waiting for approvals) is looked up again. */
const PENDING_POLL_MS = 2000;
/** Outcomes that say "try the same intent again": never applied to the proposing actor. */
const RETRY_CODES = new Set(['E_TIMEOUT', 'E_NO_RESPONDERS', 'E_NOT_OWNER', 'E_OWNERSHIP', 'E_CLOSED', 'E_CONFLICT']);

/** The one empty array actors share for what they have none of (copied on the first addition). */
const NONE: readonly never[] = Object.freeze([]);
const none = <T>(): T[] => NONE as unknown as T[];
