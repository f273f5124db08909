import { createActor, type AnyActorRef, type Snapshot } from 'xstate';
import { exampleActors } from '../../actors/index.js';
import {
  ConflictError,
  IceError,
  type IssueDetail,
  NotFoundError,
  NoRespondersError,
  TimeoutError,
  ValidationError,
  ensureError,
} from '../errors.js';
import {
  DEFAULT_LIMITS,
  FactType,
  Origin,
  Subjects,
  parseAddress,
  principalFromSubject,
  sha256Hex,
  splitAddress,
  type Decision,
  type Fact,
  type FactBody,
  type FactDraft,
  type GrantRequest,
  type Grant,
  type Intent,
  type IntentInput,
  type JsonLimits,
  type Outcome,
  type SnapshotRecord,
} from '../protocol/index.js';
import {
  Authority,
  AuthorityKey,
  AuthorityService,
  LocalTrust,
  validateIntent,
  zodIssues,
  type ActorView,
  type PolicyRule,
  type ValidatedIntent,
} from '../authority/index.js';
import { ActorRegistry, type ActorDefinition } from '../host/definition.js';
import { failedOutcome } from '../host/intake.js';
import { stateToString } from '../host/state-value.js';
import { ActorLog, LeaseManager } from '../store/jetstream/index.js';
import { NatsTransport } from '../transport/nats-transport.js';
import type { Subscription } from '../transport/transport.js';
import { systemClock, type Clock } from '../util/clock.js';
import { randomIds, type IdGen } from '../util/ids.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { ClusterGrants, unusedJournal } from './cluster-grants.js';
import { OutcomeStore } from '../store/jetstream/index.js';

/**
 * A runtime node of a cluster (first slice of docs/distributed.md): any node accepts any
 * intent; the node holding an actor's lease executes it; every commit is fenced by the
 * actor's journal subject sequence and the snapshot's KV revision.
 */

export interface ClusterNodeOptions {
  servers: string | string[];
  node: string;
  actors?: Iterable<ActorDefinition>;
  /** Lease length (default 5000 ms). */
  leaseTtlMs?: number;
  /** Lease renewal period (default ttl/3). Tests set it huge to simulate a paused node. */
  leaseRenewEveryMs?: number;
  /** JetStream replicas of the streams and buckets this node creates (default 1). */
  replicas?: number;
  clock?: Clock;
  logger?: Logger;
  ids?: IdGen;
  limits?: JsonLimits;
  policies?: PolicyRule[];
  /** Timeout of a forward to the owner node (default 5000 ms). */
  forwardTimeoutMs?: number;
  /**
   * Idle actors are passivated after this long: dropped from memory and their lease released,
   * so any node may activate them next. Default 10 minutes; 0 turns it off.
   */
  passivateAfterMs?: number;
}

export interface ClusterActorView {
  address: string;
  kind: string;
  state: string;
  status: SnapshotRecord['status'];
  /** Actor position: seq of its last fact. */
  seq: number;
  /** Hash of its last fact. */
  hash: string;
  /** Stream sequence of its last journal message. */
  streamSeq: number;
  context: unknown;
}

export interface ClusterNode {
  readonly node: string;
  readonly grants: ClusterGrants;
  readonly log: ActorLog;
  readonly leases: LeaseManager;
  /** Proposes over NATS like a client (`ice.intent.<kind>.<id>`, queue group `ice.intake`). */
  propose(intent: IntentInput, opts?: { timeoutMs?: number }): Promise<Outcome>;
  /** Takes an intent as this node's intake would (validate, outcomes, own / forward / take over). */
  accept(intent: unknown): Promise<Outcome>;
  spawn(address: string, input?: unknown): Promise<ClusterActorView>;
  /** This node's in-memory view of an actor, if it has it active (it believes it owns it). */
  actor(address: string): ClusterActorView | undefined;
  /** Passivates every actor idle for `idleMs` or more; returns how many. */
  passivateIdle(idleMs: number): Promise<number>;
  /**
   * Stops the node. `release: false` simulates death: leases are neither renewed nor
   * released, the connection is closed.
   */
  stop(opts?: { release?: boolean }): Promise<void>;
}

/** The snapshot record in `ICE_SNAPSHOTS`, plus where in the journal it stands. */
export interface ClusterSnapshotRecord extends SnapshotRecord {
  /** Hash of the actor's fact `seq`. */
  hash: string;
  /** Stream sequence of the journal message holding fact `seq`: replay starts after it. */
  streamSeq: number;
}

interface Entry {
  address: string;
  kind: string;
  def: ActorDefinition;
  actor: AnyActorRef;
  status: SnapshotRecord['status'];
  state: string;
  seq: number;
  hash: string;
  /** Subject sequence of the actor's last journal message (the next append's expectation). */
  streamSeq: number;
  /** KV revision of the actor's snapshot (the next write's expectation). */
  revision: number;
  persisted: Snapshot<unknown>;
}

interface StoredOutcome {
  digest: string;
  outcome: Outcome;
}

const leaseKey = (address: string) => address.replace('/', '.');
const nodeSubject = (node: string) => `ice.node.${node}.intent`;

export async function startClusterNode(opts: ClusterNodeOptions): Promise<ClusterNode> {
  if (!/^[A-Za-z0-9_-]+$/.test(opts.node)) throw new ValidationError(`bad node name ${opts.node}`, []);
  const clock = opts.clock ?? systemClock;
  const logger = (opts.logger ?? silentLogger()).child({ node: opts.node });
  const ids = opts.ids ?? randomIds;
  const replicas = opts.replicas ?? 1;
  const transport = await NatsTransport.connect({
    servers: opts.servers,
    name: `ice-node-${opts.node}`,
    onHandlerError: (err, subject) => logger.error({ err, subject }, 'handler failed'),
  });
  try {
    const nc = transport.connection;
    const log = await ActorLog.open(nc, { replicas });
    const holder: { node?: Node } = {};
    const leases = await LeaseManager.open(nc, {
      node: opts.node,
      clock,
      replicas,
      ...(opts.leaseTtlMs !== undefined ? { ttlMs: opts.leaseTtlMs } : {}),
      ...(opts.leaseRenewEveryMs !== undefined ? { renewEveryMs: opts.leaseRenewEveryMs } : {}),
      onLost: (key, h) => holder.node?.onLeaseLost(key, h),
    });
    const outcomes = await OutcomeStore.open<StoredOutcome>(nc, { replicas });
    const grants = await ClusterGrants.open(nc, { clock, ids, logger, replicas });
    const node = new Node({
      name: opts.node,
      registry: new ActorRegistry(opts.actors ?? exampleActors),
      transport,
      log,
      leases,
      outcomes,
      grants,
      clock,
      ids,
      logger,
      limits: opts.limits ?? DEFAULT_LIMITS,
      policies: opts.policies ?? [],
      forwardTimeoutMs: opts.forwardTimeoutMs ?? 5000,
    });
    holder.node = node;
    node.listen();
    node.startPassivation(opts.passivateAfterMs ?? 600_000);
    return node;
  } catch (e) {
    await transport.close().catch(() => {});
    throw e;
  }
}

interface NodeDeps {
  name: string;
  registry: ActorRegistry;
  transport: NatsTransport;
  log: ActorLog;
  leases: LeaseManager;
  outcomes: OutcomeStore<StoredOutcome>;
  grants: ClusterGrants;
  clock: Clock;
  ids: IdGen;
  logger: Logger;
  limits: JsonLimits;
  policies: PolicyRule[];
  forwardTimeoutMs: number;
}

type Ownership = { kind: 'local'; entry: Entry } | { kind: 'forward'; owner: string } | { kind: 'missing' };

class Node implements ClusterNode {
  readonly node: string;
  readonly grants: ClusterGrants;
  readonly log: ActorLog;
  readonly leases: LeaseManager;
  readonly #d: NodeDeps;
  readonly #entries = new Map<string, Entry>();
  readonly #turns = new KeyedMutex();
  readonly #lastUsed = new Map<string, number>();
  #passivation: NodeJS.Timeout | undefined;
  readonly #inflight = new Map<string, { digest: string; promise: Promise<Outcome> }>();
  readonly #trust = new LocalTrust();
  readonly #authority: AuthorityService;
  #subs: Subscription[] = [];
  #stopped = false;

  constructor(d: NodeDeps) {
    this.#d = d;
    this.node = d.name;
    this.grants = d.grants;
    this.log = d.log;
    this.leases = d.leases;
    const authority = new Authority({
      key: AuthorityKey.generate(),
      grants: d.grants,
      journal: unusedJournal,
      clock: d.clock,
      ids: d.ids,
      policies: d.policies,
    });
    this.#authority = new AuthorityService(
      authority,
      d.registry,
      {
        view: (a) => this.#view(a),
        runView: (runId) => (runId === undefined ? undefined : { exists: false, state: '', executing: false }),
      },
      d.transport,
      d.limits,
      d.logger,
      this.#trust,
    );
  }

  listen(): void {
    const t = this.#d.transport;
    for (const subject of [Subjects.intentAll, Subjects.intentAsAll]) {
      this.#subs.push(
        t.subscribe(
          subject,
          async (msg) => {
            const outcome = await this.handle(msg.data, msg.subject, false).catch((e: unknown) => failedOutcome(msg.data, e));
            msg.respond(outcome);
          },
          { queue: 'ice.intake' },
        ),
      );
    }
    this.#subs.push(
      t.subscribe(nodeSubject(this.node), async (msg) => {
        const outcome = await this.handle(msg.data, undefined, true).catch((e: unknown) => failedOutcome(msg.data, e));
        msg.respond(outcome);
      }),
    );
    // Operator changes over NATS (`ice spawn|grant … --nats`); restrict `ice.admin.>` to
    // operators with NATS permissions.
    for (const op of ['spawn', 'grant.issue', 'grant.revoke'] as const) {
      this.#subs.push(
        t.subscribe(
          Subjects.admin(op),
          async (msg) => {
            try {
              const a = (msg.data ?? {}) as Record<string, unknown>;
              const result =
                op === 'spawn'
                  ? await this.spawn(String(a.address), a.input)
                  : op === 'grant.issue'
                    ? await this.#d.grants.issue(a as unknown as GrantRequest)
                    : await this.#d.grants.revoke(String(a.id), typeof a.by === 'string' ? a.by : undefined);
              msg.respond({ result });
            } catch (e) {
              const err = ensureError(e);
              msg.respond({
                error: {
                  code: err instanceof IceError ? err.code : 'E_INTERNAL',
                  message: err.message,
                  ...(err instanceof ValidationError ? { issues: err.issues } : {}),
                },
              });
            }
          },
          { queue: 'ice.admin' },
        ),
      );
    }
  }

  onLeaseLost(key: string, holder: string | undefined): void {
    const address = key.replace('.', '/');
    this.#d.logger.warn({ actor: address, holder }, 'lease lost: standing down');
    this.#drop(address);
  }

  async propose(intent: IntentInput, opts: { timeoutMs?: number } = {}): Promise<Outcome> {
    const reply = await this.#d.transport.request(Subjects.intent(intent.target), intent, { timeoutMs: opts.timeoutMs ?? 10_000 });
    return reply.data as Outcome;
  }

  accept(intent: unknown): Promise<Outcome> {
    const target = (intent as { target?: unknown } | null)?.target;
    return this.handle(intent, Subjects.intent(typeof target === 'string' ? target : ''), false).catch((e: unknown) =>
      failedOutcome(intent, e),
    );
  }

  actor(address: string): ClusterActorView | undefined {
    const e = this.#entries.get(address);
    return e ? viewOf(e) : undefined;
  }

  // ------------------------------------------------------------------------------------------
  // intake

  /**
   * One intent. `subject` is the subject it arrived on from a client (checked against the
   * target and principal); `forwarded` marks a forward from another node's intake, which
   * did those checks (node subjects must be closed to clients by NATS permissions).
   */
  async handle(raw: unknown, subject: string | undefined, forwarded: boolean): Promise<Outcome> {
    const v = validateIntent(raw, this.#d.registry, this.#d.limits);
    if (!v.ok) return rejected(v.issues, v.intentId);
    const { intent, digest } = v;
    if (subject !== undefined) {
      const principal = principalFromSubject(subject);
      const expected = principal !== undefined ? Subjects.intentAs(principal, intent.target) : Subjects.intent(intent.target);
      if (subject !== expected) {
        return rejected(
          [{ path: 'target', code: 'subject_mismatch', message: `intent for ${intent.target} arrived on ${subject}`, expected }],
          intent.id,
        );
      }
      if (principal !== undefined && principal !== intent.proposer) {
        return rejected(
          [{ path: 'proposer', code: 'proposer_mismatch', message: `proposer ${intent.proposer} sent on the subject of ${principal}` }],
          intent.id,
        );
      }
    }
    const inflight = this.#inflight.get(intent.id);
    if (inflight) return inflight.digest === digest ? inflight.promise : conflict(intent);
    const stored = await this.#storedOutcome(intent.id);
    if (stored) return stored.digest === digest ? stored.outcome : conflict(intent);

    const promise = this.#route(v, raw, forwarded);
    this.#inflight.set(intent.id, { digest, promise });
    try {
      return await promise;
    } finally {
      this.#inflight.delete(intent.id);
    }
  }

  async #route(v: ValidatedIntent, raw: unknown, forwarded: boolean): Promise<Outcome> {
    const { intent } = v;
    const r = await this.#withActor(intent.target, async (): Promise<Outcome | { forward: string }> => {
      const own = await this.#ownership(intent.target, forwarded);
      if (own.kind === 'forward') return { forward: own.owner };
      if (own.kind === 'missing') {
        return rejected(
          [{ path: 'target', code: 'unknown_actor', message: `no actor ${intent.target}`, expected: 'an existing actor (spawn it first)' }],
          intent.id,
        );
      }
      // A repeat may have been executed by the previous owner while we were waiting.
      const stored = await this.#storedOutcome(intent.id);
      if (stored) return stored.digest === v.digest ? stored.outcome : conflict(intent);
      return this.#execute(own.entry, v);
    });
    if (!('forward' in r)) return r;
    if (forwarded) {
      return failed(intent, 'E_NOT_OWNER', `${this.node} does not own ${intent.target} (${r.forward} does)`);
    }
    try {
      const reply = await this.#d.transport.request(nodeSubject(r.forward), raw, { timeoutMs: this.#d.forwardTimeoutMs });
      return reply.data as Outcome;
    } catch (e) {
      if (e instanceof NoRespondersError || e instanceof TimeoutError) {
        return failed(
          intent,
          'E_OWNER_UNREACHABLE',
          `owner ${r.forward} of ${intent.target} did not answer; retry (its lease will expire)`,
        );
      }
      throw e;
    }
  }

  /**
   * Who executes for `address`: this node (active entry, lease held), another node (holds an
   * unexpired lease), or nobody yet — then this node takes the lease and activates.
   */
  async #ownership(address: string, forwarded: boolean): Promise<Ownership> {
    const key = leaseKey(address);
    const existing = this.#entries.get(address);
    if (existing && this.#d.leases.holds(key)) return { kind: 'local', entry: existing };
    if (existing) this.#drop(address);
    const h = await this.#d.leases.holder(key);
    if (h && h.node !== this.node && !h.expired) return { kind: 'forward', owner: h.node };
    if (forwarded && h?.node !== this.node) {
      // The forwarder thought we owned it; do not take actors over on someone else's word.
      return { kind: 'forward', owner: h?.node ?? '(nobody)' };
    }
    if (!(await this.#d.leases.acquire(key))) {
      const now = await this.#d.leases.holder(key);
      return { kind: 'forward', owner: now?.node ?? '(unknown)' };
    }
    const entry = await this.#activate(address);
    if (!entry) {
      await this.#d.leases.release(key);
      return { kind: 'missing' };
    }
    return { kind: 'local', entry };
  }

  // ------------------------------------------------------------------------------------------
  // execution

  async #execute(e: Entry, v: ValidatedIntent): Promise<Outcome> {
    const { intent, digest } = v;
    const cursor = { seq: e.seq, hash: e.hash };
    const at = new Date(this.#d.clock.now()).toISOString();
    const fact = (draft: FactDraft) => chainFact(cursor, draft, at);
    // The lease may have been lost (and the actor dropped) while this turn awaited: then
    // nothing is decided or written here; the caller retries with the same id.
    if (this.#entries.get(intent.target) !== e) {
      return failed(intent, 'E_NOT_OWNER', `${this.node} lost ${intent.target} before executing; retry with the same id`);
    }
    this.#trust.vouchIntent(v);
    // From here to the commit nothing awaits, so the entry cannot be dropped under us.
    const res = this.#authority.decideLocal(intent);
    if (!res.decision) throw new IceError(res.error?.code ?? 'E_AUTHORITY', res.error?.message ?? 'authority gave no decision', 'retry');
    const decision: Decision = res.decision;

    const facts: Fact[] = [];
    const f1 = fact({
      type: FactType.intentProposed,
      origin: Origin.proposer,
      actor: e.address,
      intentId: intent.id,
      data: { intent, digest },
    });
    const f2 = fact({
      type: FactType.decision,
      origin: Origin.authority,
      actor: e.address,
      intentId: intent.id,
      causes: [f1.seq],
      data: { decision },
    });
    facts.push(f1, f2);
    let outcome: Outcome;
    let next: Pick<Entry, 'state' | 'status' | 'persisted'> = { state: e.state, status: e.status, persisted: e.persisted };
    const fail = (code: string, message: string) => {
      const f3 = fact({
        type: FactType.intentFailed,
        origin: Origin.runtime,
        actor: e.address,
        intentId: intent.id,
        causes: [f2.seq],
        data: { code, message },
      });
      facts.push(f3);
      return failed(intent, code, message, f3.seq);
    };
    if (decision.verdict !== 'granted') {
      // NOT BUILT: pending approvals in cluster mode (the pending outcome is stored, nothing can approve it).
      outcome = {
        v: 1,
        status: decision.verdict,
        intentId: intent.id,
        actor: e.address,
        decisionId: decision.id,
        reasons: decision.reasons,
        seq: f2.seq,
      };
    } else if (e.status !== 'active') {
      outcome = fail('E_ACTOR_NOT_ACTIVE', `${e.address} is ${e.status}`);
    } else {
      const before = e.actor.getSnapshot() as { can(ev: unknown): boolean };
      if (!before.can(v.event)) {
        outcome = fail('E_STATE_CHANGED', `${e.address} in state ${e.state} can no longer take ${intent.action}`);
      } else {
        const from = e.state;
        e.actor.send(v.event);
        const after = e.actor.getSnapshot() as { status: string; value: never; error?: unknown };
        if (after.status === 'error') {
          this.#revert(e);
          outcome = fail('E_TRANSITION_THREW', ensureError(after.error).message);
        } else {
          const to = stateToString(after.value);
          const f3 = fact({
            type: FactType.transition,
            origin: Origin.runtime,
            actor: e.address,
            intentId: intent.id,
            causes: [f2.seq],
            data: { from, to, event: v.event },
          });
          facts.push(f3);
          next = { state: to, status: after.status === 'done' ? 'done' : 'active', persisted: e.actor.getPersistedSnapshot() };
          outcome = {
            v: 1,
            status: 'executed',
            intentId: intent.id,
            actor: e.address,
            from,
            to,
            decisionId: decision.id,
            ...(decision.grantId ? { grantId: decision.grantId } : {}),
            seq: f3.seq,
          };
        }
      }
    }

    // Commit, in this order, before any reply: journal, snapshot, outcome.
    try {
      const app = await this.#d.log.append(e.address, facts, e.streamSeq);
      this.#publishFacts(e.address, facts);
      const record: ClusterSnapshotRecord = {
        v: 1,
        actor: e.address,
        kind: e.kind,
        seq: cursor.seq,
        status: next.status,
        state: next.state,
        snapshot: next.persisted,
        updatedAt: at,
        hash: cursor.hash,
        streamSeq: app.streamSeq,
      };
      // Past the append the journal has the commit: keep memory in step with it, so that a
      // failure below leaves an entry that is dropped (and later replayed), not a stale one.
      e.streamSeq = app.streamSeq;
      e.revision = await this.#d.log.putSnapshot(record, e.revision);
      e.seq = cursor.seq;
      e.hash = cursor.hash;
      e.state = next.state;
      e.status = next.status;
      e.persisted = next.persisted;
      await this.#putOutcome(intent.id, { digest, outcome });
    } catch (err) {
      this.#drop(e.address);
      if (err instanceof ConflictError) {
        this.#d.logger.warn({ actor: e.address, intent: intent.id, err }, 'commit refused: another node owns the actor now');
        return failed(intent, 'E_NOT_OWNER', `${this.node} no longer owns ${e.address}; retry with the same id (${err.message})`);
      }
      this.#d.logger.error({ actor: e.address, intent: intent.id, err }, 'commit failed');
      return failed(intent, 'E_COMMIT', `commit of ${intent.id} failed; retry with the same id (${ensureError(err).message})`);
    }
    return outcome;
  }

  // ------------------------------------------------------------------------------------------
  // actors

  async spawn(address: string, input?: unknown): Promise<ClusterActorView> {
    const addr = parseAddress(address);
    const { kind } = splitAddress(addr);
    const def = this.#d.registry.get(kind);
    if (!def) throw new NotFoundError(`actor kind ${kind}`);
    let parsedInput = input;
    if (def.input) {
      const r = def.input.safeParse(input);
      if (!r.success) throw new ValidationError(`invalid input for ${kind}`, zodIssues(r.error, 'input'));
      parsedInput = r.data;
    }
    return this.#withActor(addr, async () => {
      const key = leaseKey(addr);
      if (!(await this.#d.leases.acquire(key))) {
        const h = await this.#d.leases.holder(key);
        throw new ConflictError(`actor ${addr} exists and is owned by ${h?.node ?? 'another node'}`);
      }
      if ((await this.#d.log.snapshot(addr)) || (await this.#d.log.lastSeq(addr)) > 0) {
        throw new ConflictError(`actor ${addr} already exists`);
      }
      const actor = this.#create(addr, def, { input: parsedInput });
      const snap = actor.getSnapshot() as { status: string; value: never; error?: unknown };
      if (snap.status === 'error') {
        actor.stop();
        await this.#d.leases.release(key);
        throw new ValidationError(`${addr} failed to start: ${ensureError(snap.error).message}`, []);
      }
      const state = stateToString(snap.value);
      const status = snap.status === 'done' ? 'done' : 'active';
      const persisted = actor.getPersistedSnapshot();
      const at = new Date(this.#d.clock.now()).toISOString();
      const cursor = { seq: 0, hash: '' };
      const f = chainFact(
        cursor,
        {
          type: FactType.actorStarted,
          origin: Origin.operator,
          actor: addr,
          data: { kind, input: parsedInput ?? null, state, node: this.node },
        },
        at,
      );
      try {
        const app = await this.#d.log.append(addr, [f], 0);
        this.#publishFacts(addr, [f]);
        const record: ClusterSnapshotRecord = {
          v: 1,
          actor: addr,
          kind,
          seq: f.seq,
          status,
          state,
          snapshot: persisted,
          updatedAt: at,
          hash: f.hash,
          streamSeq: app.streamSeq,
        };
        const revision = await this.#d.log.putSnapshot(record, 0);
        const entry: Entry = {
          address: addr,
          kind,
          def,
          actor,
          status,
          state,
          seq: f.seq,
          hash: f.hash,
          streamSeq: app.streamSeq,
          revision,
          persisted,
        };
        this.#entries.set(addr, entry);
        this.#d.logger.info({ actor: addr, state }, 'actor started');
        return viewOf(entry);
      } catch (err) {
        actor.stop();
        throw err;
      }
    });
  }

  /** Snapshot from KV, then every journal commit after the snapshot's stream position. */
  async #activate(address: string): Promise<Entry | undefined> {
    const stored = await this.#d.log.snapshot(address);
    let def: ActorDefinition | undefined;
    let actor: AnyActorRef | undefined;
    let status: SnapshotRecord['status'] = 'active';
    let seq = 0;
    let hash = '';
    let streamSeq = 0;
    let revision = 0;
    const { kind } = splitAddress(parseAddress(address));
    if (stored) {
      const rec = stored.record as ClusterSnapshotRecord;
      def = this.#d.registry.get(rec.kind);
      if (!def) throw new NotFoundError(`actor kind ${rec.kind} is not registered on ${this.node}`);
      actor = this.#create(address, def, { snapshot: rec.snapshot as Snapshot<unknown> });
      status = rec.status;
      seq = rec.seq;
      hash = rec.hash;
      streamSeq = rec.streamSeq;
      revision = stored.revision;
    }
    // From the snapshot's own commit on: its outcome may be the one that was lost.
    const commits = await this.#d.log.read(address, Math.max(0, streamSeq - 1));
    let replayed = 0;
    for (const c of commits) {
      if (c.streamSeq <= streamSeq) {
        await this.#recoverOutcome(c.facts);
        continue;
      }
      for (const f of c.facts) {
        if (f.seq <= seq) continue;
        if (f.seq !== seq + 1 || f.prev !== hash) {
          actor?.stop();
          throw new IceError(
            'E_JOURNAL_BROKEN',
            `journal of ${address} breaks at fact ${f.seq} (expected ${seq + 1} after ${hash})`,
            'terminal',
          );
        }
        if (f.type === FactType.actorStarted && !actor) {
          def = this.#d.registry.get(kind);
          if (!def) throw new NotFoundError(`actor kind ${kind} is not registered on ${this.node}`);
          actor = this.#create(address, def, { input: f.data.input ?? undefined });
          status = 'active';
        } else if (f.type === FactType.transition && actor) {
          actor.send(f.data.event);
        } else if (f.type === FactType.actorStopped) {
          status = 'stopped';
        }
        seq = f.seq;
        hash = f.hash;
      }
      streamSeq = c.streamSeq;
      replayed++;
      await this.#recoverOutcome(c.facts);
    }
    if (!actor || !def) return undefined;
    const snap = actor.getSnapshot() as { status: string; value: never; error?: unknown };
    if (snap.status === 'error') {
      actor.stop();
      throw new IceError('E_RESTORE', `${address} failed to restore: ${ensureError(snap.error).message}`, 'terminal');
    }
    if (snap.status === 'done' && status === 'active') status = 'done';
    const entry: Entry = {
      address,
      kind: def.kind,
      def,
      actor,
      status,
      state: stateToString(snap.value),
      seq,
      hash,
      streamSeq,
      revision,
      persisted: actor.getPersistedSnapshot(),
    };
    this.#entries.set(address, entry);
    this.#d.logger.info({ actor: address, seq, replayed }, 'actor activated');
    return entry;
  }

  /**
   * A commit found in the journal after the snapshot: its process may have died before the
   * outcome was written. Writes the outcome the facts imply (create: a stored one wins).
   */
  async #recoverOutcome(facts: Fact[]): Promise<void> {
    const proposed = facts.find((f) => f.type === FactType.intentProposed);
    const last = facts.at(-1);
    if (!proposed?.intentId || !last) return;
    const { intent, digest } = proposed.data as { intent: Intent; digest: string };
    const decision = (facts.find((f) => f.type === FactType.decision)?.data as { decision?: Decision } | undefined)?.decision;
    let outcome: Outcome | undefined;
    if (last.type === FactType.transition && decision) {
      const d = last.data as { from: string; to: string };
      outcome = {
        v: 1,
        status: 'executed',
        intentId: intent.id,
        actor: intent.target,
        from: d.from,
        to: d.to,
        decisionId: decision.id,
        ...(decision.grantId ? { grantId: decision.grantId } : {}),
        seq: last.seq,
      };
    } else if (last.type === FactType.intentFailed) {
      const d = last.data as { code: string; message: string };
      outcome = failed(intent, d.code, d.message, last.seq);
    } else if (last.type === FactType.decision && decision && decision.verdict !== 'granted') {
      outcome = {
        v: 1,
        status: decision.verdict,
        intentId: intent.id,
        actor: intent.target,
        decisionId: decision.id,
        reasons: decision.reasons,
        seq: last.seq,
      };
    }
    if (outcome) await this.#putOutcome(intent.id, { digest, outcome });
  }

  #view(address: string): ActorView {
    const e = this.#entries.get(address);
    if (!e) return { exists: false, status: 'missing', state: '', context: undefined, can: () => false };
    const snap = e.actor.getSnapshot() as { can(ev: unknown): boolean; context: unknown };
    return { exists: true, status: e.status, state: e.state, context: snap.context, can: (ev) => e.status === 'active' && snap.can(ev) };
  }

  #create(address: string, def: ActorDefinition, o: { input?: unknown; snapshot?: Snapshot<unknown> }): AnyActorRef {
    const actor = createActor(def.machine, { id: address, ...(o.snapshot !== undefined ? { snapshot: o.snapshot } : { input: o.input }) });
    actor.subscribe({ error: () => {} });
    actor.start();
    return actor;
  }

  #revert(e: Entry): void {
    e.actor.stop();
    e.actor = this.#create(e.address, e.def, { snapshot: e.persisted });
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

  /** Journaled facts go to watchers on `ice.fact.<kind>.<id>` too (at most once, as on one node). */
  #publishFacts(address: string, facts: Fact[]): void {
    for (const f of facts) {
      try {
        this.#d.transport.publish(Subjects.fact(address), f);
      } catch {
        // closing; the journal has them
      }
    }
  }

  #withActor<T>(address: string, fn: () => Promise<T>): Promise<T> {
    this.#lastUsed.set(address, this.#d.clock.now());
    return this.#turns.run(address, fn);
  }

  startPassivation(idleMs: number): void {
    if (idleMs <= 0) return;
    this.#passivation = setInterval(() => void this.passivateIdle(idleMs), Math.max(1000, Math.min(idleMs / 2, 60_000)));
    this.#passivation.unref();
  }

  async passivateIdle(idleMs: number): Promise<number> {
    const cutoff = this.#d.clock.now() - idleMs;
    let n = 0;
    for (const address of [...this.#entries.keys()]) {
      if ((this.#lastUsed.get(address) ?? 0) > cutoff || this.#turns.busy(address)) continue;
      // Inside the actor's turn, so no intent is executing while it goes.
      await this.#turns.run(address, async () => {
        if (!this.#entries.has(address)) return;
        this.#drop(address);
        this.#lastUsed.delete(address);
        await this.#d.leases.release(address.replace('/', '.'));
        n++;
      });
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------
  // outcomes

  async #storedOutcome(intentId: string): Promise<StoredOutcome | undefined> {
    return this.#d.outcomes.get(intentId);
  }

  async #putOutcome(intentId: string, o: StoredOutcome): Promise<void> {
    // First writer wins; an existing record is the same commit's outcome (or a recovery's).
    await this.#d.outcomes.create(intentId, o);
  }

  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#passivation) clearInterval(this.#passivation);
    for (const s of this.#subs) s.unsubscribe();
    this.#subs = [];
    await this.#d.leases.close({ release: opts.release ?? true }).catch(() => {});
    for (const a of [...this.#entries.keys()]) this.#drop(a);
    await this.#d.grants.close().catch(() => {});
    await this.#d.transport.close().catch(() => {});
  }
}

// --------------------------------------------------------------------------------------------
// helpers

/** Appends one fact to an actor's chain: seq = position, prev = the previous fact's hash. */
function chainFact(cursor: { seq: number; hash: string }, draft: FactDraft, at: string): Fact {
  const body: FactBody = {
    v: 1,
    seq: cursor.seq + 1,
    at,
    type: draft.type,
    origin: draft.origin,
    ...(draft.actor !== undefined ? { actor: draft.actor } : {}),
    ...(draft.intentId !== undefined ? { intentId: draft.intentId } : {}),
    causes: draft.causes ?? [],
    data: draft.data,
  };
  const prev = cursor.hash;
  const hash = sha256Hex(prev + JSON.stringify(body));
  cursor.seq = body.seq;
  cursor.hash = hash;
  return { ...body, prev, hash };
}

/** Recomputes an actor chain: true when every fact links to the one before. */
export function verifyActorChain(facts: Fact[]): { ok: boolean; brokenAt?: number } {
  let prev = '';
  let seq = 0;
  for (const f of facts) {
    const { prev: p, hash, ...body } = f;
    if (f.seq !== seq + 1 || p !== prev || sha256Hex(prev + JSON.stringify(body)) !== hash) return { ok: false, brokenAt: f.seq };
    prev = hash;
    seq = f.seq;
  }
  return { ok: true };
}

function viewOf(e: Entry): ClusterActorView {
  const snap = e.actor.getSnapshot() as { context: unknown };
  return {
    address: e.address,
    kind: e.kind,
    state: e.state,
    status: e.status,
    seq: e.seq,
    hash: e.hash,
    streamSeq: e.streamSeq,
    context: snap.context,
  };
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

function rejected(issues: IssueDetail[], intentId?: string): Outcome {
  // NOT BUILT: intent.rejected facts (they have no actor chain to go to yet).
  return { v: 1, status: 'rejected', ...(intentId ? { intentId } : {}), issues };
}

function conflict(intent: Intent): Outcome {
  return rejected(
    [
      {
        path: 'id',
        code: 'idempotency_conflict',
        message: `intent id ${intent.id} was already used for a different intent`,
        expected: 'a new id for a new intent',
      },
    ],
    intent.id,
  );
}

export type { Grant, GrantRequest };
