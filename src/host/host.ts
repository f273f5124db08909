import { createActor, type AnyActorRef, type AnyStateMachine, type InspectionEvent, type Snapshot } from 'xstate';
import { ConflictError, DecisionVerificationError, NotFoundError, ValidationError, ensureError } from '../errors.js';
import {
  FactType,
  Origin,
  parseAddress,
  splitAddress,
  type ActorAddress,
  type Decision,
  type Fact,
  type FactDraft,
  type Intent,
  type Outcome,
  type SnapshotRecord,
} from '../protocol/index.js';
import { verifyDecision, zodIssues, type ActorView, type AuthorityKey, type LocalTrust, type RunView } from '../authority/index.js';
import type { Journal, JournalTx } from '../journal/index.js';
import type { SqliteStore } from '../store/index.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { ActorDefinition, ActorRegistry } from './definition.js';
import { stateToString } from './state-value.js';
import { KeyedMutex } from '../util/keyed-mutex.js';

/**
 * Hosts actors: creates, restores, stops them, and executes intents as transitions.
 *
 * Invariants enforced here:
 * - nothing transitions without a decision that verifies (signature of a known authority,
 *   bound to this intent's id and digest, not expired) and says `granted`;
 * - the facts of one intent and the actor's new snapshot go into ONE journal tx;
 * - an intent id is executed at most once (the stored outcome answers repeats);
 * - intents to one actor run one at a time (`withActor`), so the state a decision saw is
 *   the state the transition starts from; the commit is awaited outside that turn, which
 *   lets the next intent pipeline into the same group commit;
 * - a transition that throws (XState error status) is not kept: the actor goes back to its
 *   last snapshot, and an `intent.failed` fact is written instead of a transition;
 * - if a group commit fails, the actors in it are dropped from memory and reload from disk.
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

export interface ActorDetail extends ActorInfo {
  context: unknown;
  snapshot: unknown;
}

export interface Applied {
  outcome: Outcome;
  /** Resolves when the facts are durable; acknowledge only then. */
  committed: Promise<void>;
}

export interface InspectRecord {
  actor: string;
  event: InspectionEvent;
}

interface Entry {
  address: ActorAddress;
  def: ActorDefinition;
  actor: AnyActorRef;
  status: SnapshotRecord['status'];
  state: string;
  seq: number;
  persisted: Snapshot<unknown>;
  /** Clock time of the last activation or use, for idle passivation. */
  lastUsed: number;
}

interface IndexEntry {
  kind: string;
  status: SnapshotRecord['status'];
  state: string;
  seq: number;
}

export interface HostOptions {
  node: string;
  registry: ActorRegistry;
  store: SqliteStore;
  journal: Journal;
  clock: Clock;
  logger: Logger;
  authorityKeys: ReadonlyMap<string, AuthorityKey>;
  /** Decisions vouched for in this process skip the signature check (not the binding checks). */
  trust?: LocalTrust;
}

export class Host {
  readonly node: string;
  readonly #registry: ActorRegistry;
  readonly #store: SqliteStore;
  readonly #journal: Journal;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #keys: ReadonlyMap<string, AuthorityKey>;
  readonly #trust: LocalTrust | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #index = new Map<string, IndexEntry>();
  readonly #turns = new KeyedMutex();
  readonly #inspectListeners = new Set<(r: InspectRecord) => void>();
  /** Actors already restored in this process: re-activation after passivation is not a new fact. */
  readonly #restored = new Set<string>();

  constructor(opts: HostOptions) {
    this.node = opts.node;
    this.#registry = opts.registry;
    this.#store = opts.store;
    this.#journal = opts.journal;
    this.#clock = opts.clock;
    this.#log = opts.logger;
    this.#keys = opts.authorityKeys;
    this.#trust = opts.trust;
    for (const row of this.#store.actorIndex()) {
      this.#index.set(row.actor, { kind: row.kind, status: row.status, state: row.state, seq: row.seq });
    }
  }

  get size(): number {
    return this.#index.size;
  }

  get activeCount(): number {
    return this.#entries.size;
  }

  has(address: string): boolean {
    return this.#index.has(address);
  }

  list(): ActorInfo[] {
    const out: ActorInfo[] = [];
    for (const [address, i] of this.#index) {
      out.push({
        address,
        kind: i.kind,
        state: i.state,
        status: i.status,
        seq: i.seq,
        owner: this.node,
        active: this.#entries.has(address),
      });
    }
    return out.sort((a, b) => a.address.localeCompare(b.address));
  }

  detail(address: string): ActorDetail | undefined {
    const i = this.#index.get(address);
    if (!i) return undefined;
    const e = this.#entries.get(address);
    const snapshot = e ? e.persisted : this.#store.snapshot(address)?.snapshot;
    const context = (snapshot as { context?: unknown } | undefined)?.context;
    return { address, kind: i.kind, state: i.state, status: i.status, seq: i.seq, owner: this.node, active: !!e, context, snapshot };
  }

  onInspect(listener: (r: InspectRecord) => void): () => void {
    this.#inspectListeners.add(listener);
    return () => this.#inspectListeners.delete(listener);
  }

  /** Runs `fn` when no other turn of this actor is running; turns run in arrival order. */
  withActor<T>(address: string, fn: () => T | Promise<T>): Promise<T> {
    return this.#turns.run(address, fn);
  }

  /** What the authority may see of an actor. Activates it if needed. */
  view(address: string): ActorView {
    const e = this.#activate(address);
    if (!e) {
      const i = this.#index.get(address);
      return { exists: !!i, status: i ? i.status : 'missing', state: i?.state ?? '', context: undefined, can: () => false };
    }
    const snap = e.actor.getSnapshot() as { can(ev: unknown): boolean; context: unknown };
    return { exists: true, status: e.status, state: e.state, context: snap.context, can: (ev) => e.status === 'active' && snap.can(ev) };
  }

  runView(runId: string | undefined): RunView | undefined {
    if (runId === undefined) return undefined;
    const address = `run/${runId}`;
    const e = this.#activate(address);
    if (!e) return { exists: false, state: '', executing: false };
    const snap = e.actor.getSnapshot() as { hasTag(t: string): boolean };
    return { exists: true, state: e.state, executing: e.status === 'active' && snap.hasTag('executing') };
  }

  /** Creates a new actor of a registered kind. Origin `runtime` (or `operator`). */
  async spawn(address: string, input?: unknown, origin: 'runtime' | 'operator' = Origin.operator): Promise<ActorInfo> {
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
    return this.withActor(addr, async () => {
      if (this.#index.has(addr)) throw new ConflictError(`actor ${addr} already exists`);
      let parsedInput = input;
      if (def.input) {
        const r = def.input.safeParse(input);
        if (!r.success) throw new ValidationError(`invalid input for ${kind}`, zodIssues(r.error, 'input'));
        parsedInput = r.data;
      }
      const actor = this.#create(addr, def.machine, { input: parsedInput });
      const snap = actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (snap.status === 'error') {
        actor.stop();
        throw new ValidationError(`${addr} failed to start: ${ensureError(snap.error).message}`, []);
      }
      const state = stateToString(snap.value);
      const persisted = actor.getPersistedSnapshot();
      const tx = this.#journal.begin();
      const f = tx.fact({
        type: FactType.actorStarted,
        origin,
        actor: addr,
        data: { kind, input: parsedInput ?? null, state, node: this.node },
      });
      const status = snap.status === 'done' ? 'done' : 'active';
      tx.snapshot(this.#record(addr, kind, f.seq, status, state, persisted));
      const entry: Entry = { address: addr, def, actor, status, state, seq: f.seq, persisted, lastUsed: this.#clock.now() };
      this.#restored.add(addr);
      this.#entries.set(addr, entry);
      this.#index.set(addr, { kind, status, state, seq: f.seq });
      try {
        await tx.commit();
      } catch (e) {
        this.#drop(addr);
        this.#index.delete(addr);
        throw e;
      }
      this.#log.info({ actor: addr, state }, 'actor started');
      return { address: addr, kind, state, status, seq: f.seq, owner: this.node, active: true };
    });
  }

  /**
   * Applies an authority decision to its intent. Call inside `withActor(intent.target)`.
   * Writes `intent.proposed` (or `approval`), the decision, and — only when granted and
   * verified — the transition, all in one tx.
   */
  apply(
    intent: Intent,
    digest: string,
    decision: Decision,
    opts: { approval?: { by: string; note?: string }; event?: { type: string } & Record<string, unknown> } = {},
  ): Applied {
    const target = intent.target;
    const log = {
      info: (o: object, m: string) => this.#log.info({ actor: target, intent: intent.id, ...o }, m),
      warn: (o: object, m: string) => this.#log.warn({ actor: target, intent: intent.id, ...o }, m),
      debug: (o: object, m: string) => this.#log.debug({ actor: target, intent: intent.id, ...o }, m),
    };
    try {
      const local = this.#trust?.isLocalDecision(decision) === true;
      verifyDecision(decision, intent, digest, this.#keys, this.#clock.now(), { skipSignature: local });
    } catch (e) {
      const err = e instanceof DecisionVerificationError ? e : new DecisionVerificationError('invalid', ensureError(e).message);
      log.warn({ reason: err.reason }, 'decision refused');
      const tx = this.#journal.begin();
      const f1 = this.#proposed(tx, intent, digest, opts);
      const f2 = this.#intentFact(tx, intent, FactType.decisionRefused, Origin.runtime, f1, {
        decisionId: decision.id,
        reason: err.reason,
        message: err.message,
      });
      // No stored outcome: a forged decision must not block the genuine one.
      return { outcome: this.#failed(intent, err.code, err.message, f2.seq), committed: tx.commit() };
    }

    const e = this.#activate(target);
    const tx = this.#journal.begin();
    try {
      const f1 = this.#proposed(tx, intent, digest, opts);
      const f2 = this.#intentFact(tx, intent, FactType.decision, Origin.authority, f1, { decision });
      if (opts.approval) tx.pendingDelete(intent.id);

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
          tx.pendingPut({ intentId: intent.id, actor: target, intent, decision, createdAt: decision.issuedAt });
        }
        tx.outcome(intent.id, digest, outcome);
        log.info({ verdict: decision.verdict, reasons: decision.reasons.map((r) => r.code) }, `intent ${decision.verdict}`);
        return { outcome, committed: tx.commit() };
      }

      const fail = (code: string, message: string): Applied => {
        const f3 = this.#intentFact(tx, intent, FactType.intentFailed, Origin.runtime, f2, { code, message });
        const outcome = this.#failed(intent, code, message, f3.seq);
        tx.outcome(intent.id, digest, outcome);
        log.warn({ code }, `intent failed: ${message}`);
        return { outcome, committed: tx.commit() };
      };
      if (!e) return fail('E_NOT_FOUND', `actor ${target} is not hosted here`);
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
      const persisted = e.actor.getPersistedSnapshot();
      const f3 = this.#intentFact(tx, intent, FactType.transition, Origin.runtime, f2, { from, to, event });
      const status = after.status === 'done' ? 'done' : 'active';
      tx.snapshot(this.#record(target, e.def.kind, f3.seq, status, to, persisted));
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
      tx.outcome(intent.id, digest, outcome);
      e.state = to;
      e.seq = f3.seq;
      e.status = status;
      e.persisted = persisted;
      this.#index.set(target, { kind: e.def.kind, status, state: to, seq: f3.seq });
      log.debug({ from, to }, 'intent executed');
      return { outcome, committed: tx.commit() };
    } catch (err) {
      tx.abort();
      throw err;
    }
  }

  /** Records a human's refusal of a pending intent. Call inside `withActor`. */
  refusePending(intent: Intent, digest: string, pendingDecision: Decision, by: string, reason: string): Applied {
    const tx = this.#journal.begin();
    const f1 = tx.fact({
      type: FactType.approval,
      origin: Origin.operator,
      actor: intent.target,
      intentId: intent.id,
      data: { approved: false, by, reason, decisionId: pendingDecision.id },
    });
    tx.pendingDelete(intent.id);
    const outcome: Outcome = {
      v: 1,
      status: 'denied',
      intentId: intent.id,
      actor: intent.target,
      decisionId: pendingDecision.id,
      reasons: [{ code: 'approval_refused', message: `${by} refused: ${reason}` }],
      seq: f1.seq,
    };
    tx.outcome(intent.id, digest, outcome);
    return { outcome, committed: tx.commit() };
  }

  /** Sends a runtime-only event (e.g. RUNTIME_ABORT). Origin `runtime`; no intent, no grant. */
  async signal(address: string, event: { type: string } & Record<string, unknown>, reason: string): Promise<Fact> {
    return this.withActor(address, async () => {
      const e = this.#activate(address);
      if (!e) throw new NotFoundError(`actor ${address}`);
      const schema = e.def.runtimeEvents[event.type];
      if (!schema)
        throw new ValidationError(`${e.def.kind} has no runtime event ${event.type}`, [
          { path: 'type', code: 'unknown_event', message: event.type, expected: Object.keys(e.def.runtimeEvents).join(', ') },
        ]);
      const { type, ...params } = event;
      const parsed = schema.safeParse(params);
      if (!parsed.success) throw new ValidationError(`invalid ${type}`, zodIssues(parsed.error, 'event'));
      const ev = { ...(parsed.data as object), type };
      const snap = e.actor.getSnapshot() as { can(ev: unknown): boolean };
      if (e.status !== 'active' || !snap.can(ev)) throw new ConflictError(`${address} in state ${e.state} cannot take ${type}`);
      const from = e.state;
      e.actor.send(ev);
      const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (after.status === 'error') {
        this.#revert(e);
        throw ensureError(after.error);
      }
      const to = stateToString(after.value);
      const persisted = e.actor.getPersistedSnapshot();
      const tx = this.#journal.begin();
      const f = tx.fact({ type: FactType.transition, origin: Origin.runtime, actor: address, data: { from, to, event: ev, reason } });
      const status = after.status === 'done' ? 'done' : 'active';
      tx.snapshot(this.#record(e.address, e.def.kind, f.seq, status, to, persisted));
      Object.assign(e, { state: to, seq: f.seq, status, persisted });
      this.#index.set(address, { kind: e.def.kind, status, state: to, seq: f.seq });
      await tx.commit();
      return f;
    });
  }

  /** Stops an actor for good: it keeps its snapshot and journal but takes no more intents. */
  async stopActor(address: string, reason: string, origin: 'runtime' | 'operator' = Origin.operator): Promise<void> {
    await this.withActor(address, async () => {
      const e = this.#activate(address);
      if (!e) throw new NotFoundError(`actor ${address}`);
      if (e.status === 'stopped') return;
      const tx = this.#journal.begin();
      const f = tx.fact({ type: FactType.actorStopped, origin, actor: address, data: { reason, state: e.state } });
      tx.snapshot(this.#record(e.address, e.def.kind, f.seq, 'stopped', e.state, e.persisted));
      e.status = 'stopped';
      e.seq = f.seq;
      this.#index.set(address, { kind: e.def.kind, status: 'stopped', state: e.state, seq: f.seq });
      await tx.commit();
      e.actor.stop();
    });
  }

  /** Frees an idle actor's memory; its snapshot stays, and the next use re-activates it. */
  passivate(address: string): boolean {
    const e = this.#entries.get(address);
    if (!e || this.#turns.busy(address) || this.#journal.hasPending(address)) return false;
    this.#drop(address);
    return true;
  }

  /** Passivates every actor idle for `idleMs` or more; returns how many. */
  passivateIdle(idleMs: number): number {
    const cutoff = this.#clock.now() - idleMs;
    let n = 0;
    for (const [address, e] of this.#entries) {
      if (e.lastUsed <= cutoff && this.passivate(address)) n++;
    }
    return n;
  }

  /** After a failed group commit: forget in-memory state that ran ahead of the disk. */
  evict(actors: Iterable<string>): void {
    for (const a of actors) {
      this.#drop(a);
      const rec = this.#store.snapshot(a);
      if (rec) this.#index.set(a, { kind: rec.kind, status: rec.status, state: rec.state, seq: rec.seq });
      else this.#index.delete(a);
    }
  }

  stopAll(): void {
    for (const a of [...this.#entries.keys()]) this.#drop(a);
  }

  #proposed(tx: JournalTx, intent: Intent, digest: string, opts: { approval?: { by: string; note?: string } }): Fact {
    if (opts.approval) {
      return tx.fact({
        type: FactType.approval,
        origin: Origin.operator,
        actor: intent.target,
        intentId: intent.id,
        data: { approved: true, by: opts.approval.by, ...(opts.approval.note ? { note: opts.approval.note } : {}), digest },
      });
    }
    return tx.fact({
      type: FactType.intentProposed,
      origin: Origin.proposer,
      actor: intent.target,
      intentId: intent.id,
      data: { intent, digest },
    });
  }

  /** A fact about one intent: on its target actor, caused by `cause`. */
  #intentFact(
    tx: JournalTx,
    intent: Intent,
    type: FactDraft['type'],
    origin: FactDraft['origin'],
    cause: Fact,
    data: Record<string, unknown>,
  ): Fact {
    return tx.fact({ type, origin, actor: intent.target, intentId: intent.id, causes: [cause.seq], data });
  }

  #failed(intent: Intent, code: string, message: string, seq: number): Outcome {
    return { v: 1, status: 'failed', intentId: intent.id, actor: intent.target, error: { code, message }, seq };
  }

  #record(address: string, kind: string, seq: number, status: SnapshotRecord['status'], state: string, snapshot: unknown): SnapshotRecord {
    return { v: 1, actor: address, kind, seq, status, state, snapshot, updatedAt: new Date(this.#clock.now()).toISOString() };
  }

  #create(address: string, machine: AnyStateMachine, opts: { input?: unknown; snapshot?: Snapshot<unknown> }): AnyActorRef {
    const actor = createActor(machine, {
      id: address,
      ...(opts.snapshot !== undefined ? { snapshot: opts.snapshot } : { input: opts.input }),
      inspect: (ev: InspectionEvent) => {
        if (this.#inspectListeners.size === 0) return;
        for (const l of this.#inspectListeners) l({ actor: address, event: ev });
      },
    });
    // Without an error observer XState rethrows an action's error asynchronously and
    // would crash the process; errors are handled through the snapshot status instead.
    actor.subscribe({ error: () => {} });
    actor.start();
    return actor;
  }

  /** Loads an actor into memory from its snapshot (+ any later transitions). */
  #activate(address: string): Entry | undefined {
    const existing = this.#entries.get(address);
    if (existing) {
      existing.lastUsed = this.#clock.now();
      return existing;
    }
    const idx = this.#index.get(address);
    if (!idx) return undefined;
    const rec = this.#store.snapshot(address);
    if (!rec) return undefined;
    const def = this.#registry.get(rec.kind);
    if (!def) {
      this.#log.warn({ actor: address, kind: rec.kind }, 'actor kind is not registered here; not activated');
      return undefined;
    }
    let actor: AnyActorRef;
    let state = rec.state;
    let seq = rec.seq;
    let replayed = 0;
    try {
      actor = this.#create(address, def.machine, { snapshot: rec.snapshot as Snapshot<unknown> });
      for (const row of this.#store.actorFactRowsAfter(address, rec.seq)) {
        const f = JSON.parse(row.body) as Fact;
        if (f.type !== FactType.transition) continue;
        actor.send(f.data.event);
        seq = f.seq;
        replayed++;
      }
      const snap = actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (snap.status === 'error') throw ensureError(snap.error);
      state = stateToString(snap.value);
    } catch (err) {
      this.#log.error({ actor: address, err }, 'actor failed to restore');
      this.#index.set(address, { ...idx, status: 'failed' });
      const tx = this.#journal.begin();
      tx.fact({
        type: FactType.actorFailed,
        origin: Origin.runtime,
        actor: address,
        data: { message: ensureError(err).message, node: this.node },
      });
      void tx.commit().catch(() => {});
      return undefined;
    }
    const entry: Entry = {
      address: address as ActorAddress,
      def,
      actor,
      status: rec.status,
      state,
      seq,
      persisted: actor.getPersistedSnapshot(),
      lastUsed: this.#clock.now(),
    };
    this.#entries.set(address, entry);
    if (this.#restored.has(address) && replayed === 0) return entry;
    this.#restored.add(address);
    const tx = this.#journal.begin();
    tx.fact({
      type: FactType.actorRestored,
      origin: Origin.runtime,
      actor: address,
      data: { fromSeq: rec.seq, replayed, state, node: this.node },
    });
    void tx.commit().catch(() => {});
    return entry;
  }

  #revert(e: Entry): void {
    e.actor.stop();
    e.actor = this.#create(e.address, e.def.machine, { snapshot: e.persisted });
  }

  #drop(address: string): void {
    const e = this.#entries.get(address);
    if (!e) return;
    this.#entries.delete(address);
    try {
      e.actor.stop();
    } catch {
      // already stopped
    }
  }
}

export function eventOf(intent: Intent, def: ActorDefinition): { type: string } & Record<string, unknown> {
  const schema = def.events[intent.action];
  const params = schema ? (schema.parse(intent.params) as Record<string, unknown>) : intent.params;
  return { ...params, type: intent.action };
}
