import { join, resolve } from 'node:path';
import { hostname } from 'node:os';
import { z } from 'zod';
import { exampleActors } from '../actors/index.js';
import {
  ConfigError,
  IceError,
  JournalBrokenAtStartError,
  NoRespondersError,
  TimeoutError,
  ValidationError,
  ensureError,
  type ErrorAction,
} from './errors.js';
import {
  DEFAULT_LIMITS,
  FactType,
  Origin,
  PrincipalSchema,
  Subjects,
  isAddress,
  splitAddress,
  type Fact,
  type Grant,
  type GrantDelegation,
  type GrantRequest,
  type Intent,
  type IntentInput,
  type JsonLimits,
  type Outcome,
  assertUnicode,
} from './protocol/index.js';
import {
  Authority,
  AuthorityKey,
  AuthorityService,
  GrantBook,
  grantView,
  LocalTrust,
  validateIntent,
  zodIssues,
  type EnsureGrantRequest,
  type GrantView,
  type IsMember,
  type AuthorityPublicKey,
  type PolicyRule,
} from './authority/index.js';
import {
  ActorRegistry,
  Host,
  Intake,
  type ActorDefinition,
  type ActorDetail,
  type ActorInfo,
  type Applied,
  type InspectRecord,
  type SettleHow,
  type Spawned,
  pendingView,
  type PendingApprovalView,
} from './host/index.js';
import { failedOutcome } from './host/intake.js';
import { effectRows, timerRows, type EffectRow, type TimerRow } from './host/timer-rows.js';
import { RuntimeMetrics } from './util/metrics.js';
import { parseActorPageArgs, type ActorPage, type ActorPageArgs } from './host/actor-page.js';
import { runtimeChain, turnAttestationText, type ChainHead, type PendingRecord, type StorePort } from './host/ports.js';
import { DataDirLock, SqliteJournal, SqliteStore, checkStoreAtStart, type StartCheck } from './store/index.js';
import { LocalOwnership } from './ownership/index.js';
import { EmbeddedTransport, redactNatsUrls, type Transport } from './transport/index.js';
import { systemClock, type Clock } from './util/clock.js';
import { randomIds, type IdGen } from './util/ids.js';
import { createLogger, type Logger } from './util/logger.js';
import { SqliteJournalReader, type JournalReader } from './journal/reader.js';
import { startCluster, type ClusterOptions } from './cluster/cluster.js';
import { publishInspection } from './inspector/wire.js';
import { serveAdminOverNats } from './admin/nats.js';
import { ApproveArgs, DenyArgs, ExpireArgs } from './admin/ops.js';
import { PolicyBook, type PolicySetRecord, type PolicySource, type PolicyStorage } from './policy/index.js';

export interface RuntimeOptions {
  /** Where the store, the authority key and the owner lock live. Default `./.ice`. */
  dataDir?: string;
  /**
   * Serve even when the start-up check finds the journal broken (embedded). Off by default:
   * a broken journal is refused with where it breaks. When on, a `journal.broken` fact
   * records it; a broken actor chain is still never appended to.
   */
  serveBrokenJournal?: boolean;
  /**
   * Run as a node of a cluster instead of on a data dir: actors, journals and grants live in
   * JetStream, ownership is a lease per actor, any node accepts any intent.
   */
  cluster?: ClusterOptions;
  /** Actor kinds to host. Default: the examples (`run`, `deployment`). */
  actors?: ActorDefinition[];
  /** Runtime-wide policy rules (kinds bring their own too). */
  policies?: PolicyRule[];
  /** Group membership for `group:<name>` approver patterns; without it they admit nobody. */
  isMember?: IsMember;
  /**
   * How often pending intents past their approval deadline are denied (`approval_expired`)
   * without waiting for someone to list or approve them. Default 60 s; 0 turns it off
   * (expiry is then noticed at the next list, approval or denial).
   */
  approvalSweepMs?: number;
  /**
   * Publish this node's XState inspection events on `ice.inspect.<node>.<kind>.<id>` (for
   * `ice inspect --nats`). Off by default: it costs a message per event.
   */
  publishInspection?: boolean;
  /** Message bus; default an embedded one (a NATS one in cluster mode). */
  transport?: Transport;
  /** Node name in facts and logs. Default `<hostname>-<pid>`. */
  node?: string;
  logger?: Logger;
  clock?: Clock;
  ids?: IdGen;
  limits?: Partial<JsonLimits>;
  /** How long a decision stays valid. Default 30 s. */
  decisionTtlMs?: number;
  /** How long a proposal waits for its outcome. Default 30 s. */
  proposeTimeoutMs?: number;
  /**
   * Idle actors are passivated after this long (snapshot kept, memory and ownership freed;
   * the next use re-activates them). Default 10 minutes; 0 turns it off.
   */
  passivateAfterMs?: number;
  /**
   * How often the store's wake-up index is read for actors not in memory here that have a
   * durable timer due (or a restart): passivated actors, actors of a node that died (cluster).
   * Default 5 s; it is also read once at start. A timer fires late by at most this (plus, after
   * a node died, the time its lease takes to expire). 0: this runtime fires no timers at all
   * (a one-shot CLI command; `fireDueTimers()` still does when called).
   */
  wakeScanMs?: number;
  /**
   * Accept intents only on `ice.as.<principal>.<kind>.<id>` with a matching proposer, and
   * admin requests over NATS only on `ice.admin.as.<principal>.<op>` (see docs/protocol.md,
   * Security). `rt.propose` always uses those subjects.
   */
  requirePrincipalSubject?: boolean;
  /**
   * How in-process decisions are signed: `batch` (default) — the store's signed checkpoints
   * attest them; `each` — every decision also carries its own ed25519 signature (~30 µs per
   * intent). Decisions that cross a transport are always signed and verified.
   */
  signDecisions?: 'batch' | 'each';
}

export interface SpawnOptions {
  /** Return the actor if it exists (spawned with the same input) instead of throwing. */
  ifAbsent?: boolean;
}

export interface ProposeOptions {
  timeoutMs?: number;
}

/**
 * An intent waiting for approvals: its requirement (quorum, approvers, ttl), the approvals
 * so far (who, when, note, fact seq), how many remain, and its deadline.
 */
export type PendingApproval = PendingApprovalView;

/**
 * An ICE runtime in this process — on a data dir (`<dataDir>/ice.db`), or as one node of a
 * cluster (`cluster: { servers }`). The same host, intake and authority in both; only the
 * store and the ownership differ. See README for the tour.
 * @example
 * const rt = await createRuntime({ dataDir: './.ice' });
 * await rt.spawn('deployment/web', { service: 'web' });
 * await rt.grants.issue({ subject: 'agent:bot', scope: 'deployment/web:*' });
 * const out = await rt.propose({ id: 'i-1', proposer: 'agent:bot', target: 'deployment/web',
 *   action: 'CONFIGURE', params: { version: '1.0.0', replicas: 2 } });
 * await rt.stop();
 */
export interface Runtime {
  readonly node: string;
  readonly mode: 'embedded' | 'cluster';
  /** The data dir (embedded), or '' in a cluster. */
  readonly dataDir: string;
  readonly transport: Transport;
  readonly authorityKeyId: string;
  /** The public keys that sign this runtime's decisions and journal (a cluster: every node's, this node's first). */
  authorityKeys(): Promise<AuthorityPublicKey[]>;
  readonly logger: Logger;
  /** The chain this process writes facts without an actor to (`_runtime/…`). */
  readonly runtimeChain: string;
  /** Accepts anything: malformed input comes back as a `rejected` outcome. */
  propose(intent: IntentInput | Record<string, unknown>, opts?: ProposeOptions): Promise<Outcome>;
  /**
   * Takes an intent as this node's intake would if it had arrived on its target's subject
   * (validation, idempotency, execution here or a forward to the owner), without the bus hop.
   */
  accept(intent: unknown): Promise<Outcome>;
  /**
   * Creates an actor: an `actor.started` fact on its chain.
   *
   * `{ ifAbsent: true }` is for programs that set up their actors on every start: an actor
   * that exists is returned as it is (`created: false`; no fact, not activated), whatever its
   * status — provided it was spawned with the same input, else ExistingDiffersError
   * (`E_EXISTS_DIFFERENT`, `field` e.g. `input.service`). Two nodes at once leave one
   * `actor.started` fact.
   * @throws AlreadyExistsError (`E_CONFLICT`) when the actor exists and `ifAbsent` is not set.
   * @example
   * const web = await rt.spawn('deployment/web', { service: 'web' }, { ifAbsent: true });
   * if (web.status === 'stopped') throw new Error('deployment/web was stopped by an operator');
   */
  spawn(address: string, input?: unknown, opts?: SpawnOptions): Promise<Spawned>;
  actor(address: string): Promise<ActorDetail | undefined>;
  /** This node's in-memory view of an actor it hosts now (it believes it owns it), else undefined. */
  hosting(address: string): (ActorInfo & { context: unknown }) | undefined;
  /** Every actor at once, sorted by address (small stores; prefer `listActorsPage`). */
  listActors(): Promise<ActorInfo[]>;
  /**
   * One page of the actors in the store, in address order, optionally of one kind, status or
   * state (src/host/actor-page.ts); pass `next` as `after` for the following page.
   * @throws ValidationError for a bad limit (1-1000), cursor, kind, status or state.
   * @example
   * for (let after: string | undefined; ; ) {
   *   const page = await rt.listActorsPage({ kind: 'deployment', limit: 500, ...(after ? { after } : {}) });
   *   handle(page.rows);
   *   if (!(after = page.next)) break;
   * }
   */
  listActorsPage(args?: ActorPageArgs): Promise<ActorPage<ActorInfo>>;
  definitions(): ActorDefinition[];
  signal(address: string, event: { type: string } & Record<string, unknown>, reason: string): Promise<Fact>;
  stopActor(address: string, reason: string): Promise<void>;
  /**
   * Restarts a failed actor by hand (an `actor.restarted` fact with origin `operator`): back to
   * `active` in the state of its last good turn, with its pending timers.
   * @throws ConflictError when the actor is not failed.
   */
  restartActor(address: string, by: string, reason?: string): Promise<ActorInfo>;
  /** Pending durable timers of every actor (in memory or not), earliest first. */
  timers(opts?: { limit?: number }): Promise<TimerRow[]>;
  /** Durable effects started and not finished, of every actor (in memory or not): running or waiting to retry. */
  effects(opts?: { limit?: number }): Promise<EffectRow[]>;
  /** Fires every due timer now (for a hand-moved clock; the runtime fires them on time itself). */
  fireDueTimers(): Promise<number>;
  passivate(address: string): Promise<boolean>;
  /** Passivates every actor idle for `idleMs` or more (by the runtime's clock); returns how many. */
  passivateIdle(idleMs: number): Promise<number>;
  readonly grants: {
    /** @throws AlreadyExistsError (`E_CONFLICT`) when `req.id` is taken (see `ensure`). */
    issue(req: GrantRequest): Promise<Grant>;
    /**
     * Issues the grant unless one with `req.id` exists; returns the existing one unchanged
     * (no fact) when its terms are the requested ones: subject, scope, runId, maxUses,
     * expiresAt (`by` and `note` are not compared). Needs `id`; takes `expiresAt`, not `ttlMs`.
     * Race-safe across nodes: one `grant.issued` fact.
     * @throws ExistingDiffersError (`E_EXISTS_DIFFERENT`) when it exists with other terms or
     *   was revoked (`field` names which).
     * @example
     * await rt.grants.ensure({ id: 'g-bot-web', subject: 'agent:bot', scope: 'deployment/web:*' });
     */
    ensure(req: EnsureGrantRequest): Promise<Grant>;
    /** Revokes the grant and every grant delegated from it (transitively), one fact each. */
    revoke(id: string, by?: string, reason?: string): Promise<Grant>;
    /**
     * A holder (`req.by`) of grant `req.parentId` delegates a narrower one to `req.subject`.
     * @throws DelegationRefusedError naming the field wider than the parent (or `by`, `parentId`).
     */
    delegate(req: GrantDelegation): Promise<Grant>;
    list(): Grant[];
    /**
     * One grant with its chain (root → … → it) and its delegated children, each with its status
     * by the runtime's clock (the one the authority decides by).
     * @throws NotFoundError
     */
    show(id: string): GrantView;
  };
  /** The Cedar policy set (docs/policies.md): versions shared by every node, applied without a restart. */
  readonly policies: {
    /**
     * Compiles the set against the registered kinds and installs it as the next version; the
     * same set as the one in force returns it (`unchanged: true`) without a new version.
     * @throws ValidationError naming `file:line:col` and the reason; the set in force stays.
     */
    apply(source: PolicySource, by: string): Promise<PolicySetRecord & { unchanged?: boolean }>;
    list(): PolicySetRecord[];
    /** One version (default: the newest). @throws NotFoundError */
    show(version?: number): PolicySetRecord;
    /** The version in force on this node (0: none). */
    version(): number;
    /** Waits until this node runs `version` or later (a cluster's other nodes learn it by their watch). */
    waitFor(version: number, timeoutMs?: number): Promise<boolean>;
  };
  readonly approvals: {
    /** The pending intents; those past their deadline are denied (`approval_expired`) first and not listed. */
    list(): Promise<PendingApproval[]>;
    /**
     * Approves a pending intent as `by`. Short of the quorum: a `pending` outcome whose reason
     * `approval_recorded` says `approval recorded, 1 of 2`; at the quorum: the outcome of the
     * re-decided intent (executed, denied with reasons, failed).
     * @throws ApprovalRefusedError (`E_APPROVAL_SELF`, `_REPEAT`, `_NOT_ALLOWED`, `_EXPIRED`,
     *   `_UNKNOWN_INTENT`, `_NOT_PENDING`), after recording it as an `approval.refused` fact.
     */
    approve(intentId: string, by: string, note?: string): Promise<Outcome>;
    /** Refuses a pending intent (denied `approval_refused`). Throws as `approve` (no self/repeat). */
    deny(intentId: string, by: string, reason: string): Promise<Outcome>;
    /** Denies a pending intent `approval_expired` if its deadline passed; undefined when there is nothing to expire. */
    expire(intentId: string): Promise<Outcome | undefined>;
  };
  /** Reads and verifies the journal (every chain), the same in both modes. */
  readonly journal: JournalReader;
  /** Facts committed by this process, after they are durable. */
  onFact(listener: (f: Fact) => void): () => void;
  onInspect(listener: (r: InspectRecord) => void): () => void;
  /** Tells other processes (the CLI) where this owner's admin endpoint listens (`owner.json`, 0600). */
  advertiseAdmin(adminUrl: string, adminToken: string): void;
  stats(): { active: number; flushes: number; maxBatch: number };
  /** This node's Prometheus metrics, as text (the inspector serves them at `/metrics`). */
  metrics(): Promise<string>;
  /** The store port this runtime commits to (tests and tooling). */
  readonly store: StorePort;
  stop(opts?: { release?: boolean }): Promise<void>;
}

export async function createRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  const node = opts.node ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(node)) {
    throw new ConfigError(`node name ${JSON.stringify(node)}: expected 1-64 of A-Z a-z 0-9 _ - (it names a NATS subject token)`);
  }
  const logger = (opts.logger ?? createLogger()).child({ node });
  const clock = opts.clock ?? systemClock;
  const ids = opts.ids ?? randomIds;
  const limits: JsonLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const registry = new ActorRegistry(opts.actors ?? exampleActors);
  const proposeTimeoutMs = opts.proposeTimeoutMs ?? 30_000;
  if (opts.publishInspection && !opts.cluster && opts.transport?.kind !== 'nats') {
    // Refused before anything starts: there would be nowhere to publish them.
    throw new ConfigError('publishInspection needs a NATS transport (cluster mode, or transport: a NatsTransport)');
  }
  const trust = new LocalTrust();
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };

  try {
    let key: AuthorityKey;
    let store: StorePort;
    let transport: Transport;
    let ownership;
    let grantBook: GrantBook;
    let reader: JournalReader;
    let policyStorage: PolicyStorage;
    let chainName: string;
    let lock: DataDirLock | undefined;
    let sqlite: SqliteJournal | undefined;
    let clusterParts: Awaited<ReturnType<typeof startCluster>> | undefined;
    // Assigned below; callbacks given to the stores need it first.
    // eslint-disable-next-line prefer-const
    let host!: Host;
    const factListeners = new Set<(f: Fact) => void>();
    let check: StartCheck;
    let releaseOnStop = true;

    if (opts.cluster) {
      if (opts.dataDir !== undefined && opts.cluster.keyFile === undefined) {
        throw new ConfigError('dataDir has no effect in cluster mode (actors live in JetStream); give cluster.keyFile for the node key');
      }
      clusterParts = await startCluster(opts.cluster, {
        node,
        clock,
        ids,
        logger,
        ...(opts.transport ? { transport: opts.transport } : {}),
      });
      cleanups.push(() => clusterParts!.close({ release: releaseOnStop }));
      ({ key, store, transport, ownership, grants: grantBook, reader, policies: policyStorage } = clusterParts);
      check = await clusterParts.checkAtStart();
      chainName = runtimeChain(node);
    } else {
      const dataDir = resolve(opts.dataDir ?? './.ice');
      lock = DataDirLock.acquire(dataDir);
      cleanups.push(() => lock!.release());
      const st = new SqliteStore(dataDir, {
        onWal: (w) => {
          if (w.overLimit)
            logger.warn(
              { walBytes: w.walBytes, frames: w.frames, checkpointed: w.checkpointed },
              'the write-ahead log is over its limit: a reader holds an old snapshot, so checkpoints cannot finish (close long-running readers of ice.db)',
            );
        },
        onCheckpointError: (err) =>
          logger.error({ err }, 'background checkpoints of ice.db fail; the writer copies the log itself meanwhile'),
      });
      cleanups.push(() => st.close());
      if (st.startup && st.startup.walBytes > 0)
        logger[st.startup.complete ? 'info' : 'warn'](
          { walBytes: st.startup.walBytes, ms: st.startup.checkpointMs, complete: st.startup.complete },
          st.startup.complete
            ? "the last run's write-ahead log was checkpointed before serving"
            : "the last run's write-ahead log could not be checkpointed fully (a reader holds it); it will be, in the background",
        );
      key = AuthorityKey.loadOrCreate(join(dataDir, 'authority.key'));
      const k = key;
      check = await checkStoreAtStart(st, k);
      sqlite = new SqliteJournal(st, {
        now: () => clock.now(),
        attest: (hash) => ({ keyId: k.keyId, sig: k.signCheckpoint(hash) }),
        onFlushFailed: (chains, err) => {
          logger.error({ err, chains: [...chains] }, 'group commit failed; reloading affected actors from the store');
          host.evict(chains);
        },
      });
      store = sqlite;
      ownership = new LocalOwnership(node);
      grantBook = new GrantBook(st.grants(), () => Promise.reject(new Error('grant recorder not ready')), clock, ids);
      policyStorage = {
        list: () => Promise.resolve(st.policySets() as PolicySetRecord[]),
        put: (r) => Promise.resolve(st.putPolicySet(r.version, r)),
      };
      transport =
        opts.transport ?? new EmbeddedTransport({ onHandlerError: (err, subject) => logger.error({ err, subject }, 'handler failed') });
      if (!opts.transport) cleanups.push(() => transport.close());
      reader = new SqliteJournalReader(sqlite, k);
      chainName = runtimeChain('_');
    }

    // Before serving: the journal written since the last start that verified (see the start checks).
    let brokenAtStart: Record<string, unknown> | undefined;
    {
      const r = check.result;
      const journalName = clusterParts
        ? `the cluster journal on ${redactNatsUrls(opts.cluster!.servers).join(',')}`
        : `the journal in ${lock!.dataDir}`;
      if (r.ok) {
        logger.info({ facts: r.count, fromPos: check.fromPos, lastPos: r.lastPos, ms: check.ms }, 'journal verified at start');
      } else {
        const where = { ...(r.brokenChain ? { chain: r.brokenChain, seq: r.brokenAt } : {}), pos: r.brokenPos };
        const verifyCommand = clusterParts
          ? `ice journal verify --nats ${redactNatsUrls(opts.cluster!.servers).join(',')}`
          : `ice journal verify --data ${lock!.dataDir}`;
        const broken = new JournalBrokenAtStartError(where, r.reason ?? 'broken', journalName, verifyCommand);
        if (!opts.serveBrokenJournal) {
          logger.error({ ...where, reason: r.reason }, broken.message);
          throw broken;
        }
        logger.warn(
          { ...where, reason: r.reason },
          'serving a broken journal because serveBrokenJournal is set; recorded as a journal.broken fact',
        );
        brokenAtStart = { ...where, reason: r.reason ?? 'broken', fromPos: check.fromPos };
      }
    }

    const policyBook = await PolicyBook.open({ storage: policyStorage, kinds: registry.list(), clock, logger });
    const authority = new Authority({
      key,
      grants: grantBook,
      clock,
      ids,
      policySet: () => policyBook.current(),
      ...(opts.policies ? { policies: opts.policies } : {}),
      ...(opts.isMember ? { isMember: opts.isMember } : {}),
      ...(opts.decisionTtlMs !== undefined ? { decisionTtlMs: opts.decisionTtlMs } : {}),
    });
    const metrics = new RuntimeMetrics(node, {
      inMemory: () => host.activeCount,
      failedInMemory: () => host.failedCount,
      wakeups: () => host.wakeupCount,
    });
    const publish = (facts: readonly Fact[]) => {
      metrics.count(facts);
      // A turn's facts share one chain: its subject is built once per run of it.
      let chain: string | undefined;
      let subject = '';
      for (const f of facts) {
        if (f.actor !== chain || subject === '') {
          chain = f.actor;
          subject = Subjects.fact(chain);
        }
        try {
          transport.publish(subject, f);
        } catch {
          // transport closing; the fact is durable regardless
        }
        for (const l of factListeners) {
          try {
            l(f);
          } catch {
            // a listener's failure is its own
          }
        }
      }
    };
    host = new Host({
      node,
      registry,
      store,
      ownership,
      grants: grantBook,
      runtimeChain: chainName,
      clock,
      logger,
      authorityKeys: new Map([[key.keyId, key]]),
      trust,
      onCommitted: publish,
      fireTimers: (opts.wakeScanMs ?? 5000) !== 0,
      // A cluster keeps one message per turn: each is signed by the node that wrote it.
      ...(clusterParts
        ? { attest: (chain: string, head: ChainHead) => ({ keyId: key.keyId, sig: key.signText(turnAttestationText(chain, head)) }) }
        : {}),
    });
    cleanups.push(() => host.stopAll());
    host.setEscalationForwarder((owner, to, event, from) =>
      forwardAdmin<Fact>(transport, owner, 'signal', { address: to, event, reason: `${from} failed` }),
    );
    grantBook.setRecorder(async (drafts, grants) => {
      await host.record(drafts, { grants });
    });
    policyBook.setRecorder(async (r) => {
      await host.record([
        {
          type: FactType.policyApplied,
          origin: Origin.operator,
          data: { version: r.version, hash: r.hash, by: r.appliedBy, policies: r.count, files: r.files.map((f) => f.name) },
        },
      ]);
    });
    if (brokenAtStart)
      await host.record([{ type: FactType.journalBroken, origin: Origin.operator, data: { ...brokenAtStart, node, servedAnyway: true } }]);
    const authorityService = new AuthorityService(
      authority,
      registry,
      host,
      transport,
      limits,
      logger,
      trust,
      opts.signDecisions === 'each',
    );
    authorityService.listen();
    cleanups.push(() => authorityService.close());
    const forwardTimeoutMs = opts.cluster?.forwardTimeoutMs ?? 5000;
    const intake = new Intake({
      registry,
      host,
      transport,
      logger,
      limits,
      decideTimeoutMs: proposeTimeoutMs,
      trust,
      ...(opts.requirePrincipalSubject ? { requirePrincipalSubject: true } : {}),
      // The authority is co-located in both deployments: ask it directly, not over the bus.
      localAuthority: authorityService,
      ...(clusterParts
        ? {
            forward: async (owner: string, raw: unknown): Promise<Outcome> => {
              try {
                return (await transport.request(nodeSubject(owner, 'intent'), raw, { timeoutMs: forwardTimeoutMs })).data as Outcome;
              } catch (e) {
                if (e instanceof NoRespondersError || e instanceof TimeoutError) {
                  const t = (raw as { target?: unknown }).target;
                  return failedOutcome(
                    raw,
                    new IceError(
                      'E_OWNER_UNREACHABLE',
                      `owner ${owner} of ${String(t)} did not answer; retry with the same id (its lease will expire)`,
                      'retry',
                    ),
                  );
                }
                throw e;
              }
            },
          }
        : {}),
    });
    intake.listen();
    // intents actors propose (src/host/outbox.ts) enter like any other, on their principal's subject
    host.setOutboundProposer((intent) =>
      Promise.resolve()
        .then(() => intake.handle(intent, Subjects.intentAs(String(intent.proposer), String(intent.target))))
        .catch((e: unknown) => failedOutcome(intent, e)),
    );
    cleanups.push(() => intake.close());
    if (clusterParts) {
      const sub = transport.subscribe(nodeSubject(node, 'intent'), async (msg) => {
        const outcome = await intake.handle(msg.data, undefined, { forwarded: true }).catch((e: unknown) => failedOutcome(msg.data, e));
        msg.respond(outcome);
      });
      cleanups.push(() => sub.unsubscribe());
    }

    const passivateAfterMs = opts.passivateAfterMs ?? 600_000;
    const sweeper =
      passivateAfterMs > 0
        ? setInterval(
            () => {
              void host.passivateIdle(passivateAfterMs).then((n) => {
                if (n > 0) logger.debug({ passivated: n }, 'idle actors passivated');
              });
            },
            Math.max(1000, Math.min(passivateAfterMs / 2, 60_000)),
          )
        : undefined;
    sweeper?.unref();
    cleanups.push(() => sweeper && clearInterval(sweeper));
    const wakeScanMs = opts.wakeScanMs ?? 5000;
    if (!Number.isSafeInteger(wakeScanMs) || (wakeScanMs !== 0 && wakeScanMs < 50)) {
      throw new ConfigError(`wakeScanMs must be 0 (off) or an integer ≥ 50 (ms), not ${String(wakeScanMs)}`);
    }
    const scanWakeups = async () => {
      // Read a little ahead, so a timer due before the next scan is in the schedule already.
      // In a cluster every node schedules every actor's wake-up: at its time, the node that
      // holds the actor fires it and the others find it owned elsewhere (one lease read each)
      // and let go; an actor nobody holds (passivated, its node stopped or dead) is claimed by
      // one of them. So a timer is late by at most the scan period after its node died.
      host.scheduleTimers(await store.wakeups(clock.now() + 2 * wakeScanMs, 100_000));
    };
    if (wakeScanMs > 0) {
      await scanWakeups();
      const wakeScan = setInterval(() => {
        void scanWakeups().catch((err: unknown) => logger.warn({ err: ensureError(err).message }, 'wake-up scan failed'));
      }, wakeScanMs);
      wakeScan.unref();
      cleanups.push(() => clearInterval(wakeScan));
    }
    const approvalSweepMs = opts.approvalSweepMs ?? 60_000;
    const approvalSweep =
      approvalSweepMs > 0
        ? setInterval(() => {
            void expireDue({ sweep: true }).catch((err: unknown) => logger.warn({ err }, 'approval expiry sweep failed'));
          }, approvalSweepMs)
        : undefined;
    approvalSweep?.unref();
    cleanups.push(() => approvalSweep && clearInterval(approvalSweep));
    const owner = { pid: process.pid, node, startedAt: new Date(clock.now()).toISOString() };
    lock?.writeOwner(owner);
    logger.info({ mode: clusterParts ? 'cluster' : 'embedded', dataDir: lock?.dataDir, transport: transport.kind }, 'runtime started');

    const validate = (raw: unknown) => {
      const v = validateIntent(raw, registry, limits);
      if (!v.ok) throw new ValidationError('the pending intent no longer validates', v.issues);
      return v;
    };
    const decide = (i: Intent, d: string, by?: string) => intake.decide(i, d, by);
    const judge = (a: Parameters<Authority['judgeApproval']>[0]) => authority.judgeApproval(a);
    /** Runs an operation where the actor lives: here, or forwarded to its owner node. */
    const settle = async (intentId: string, how: SettleHow): Promise<Outcome | undefined> => {
      const r = await host.settle(intentId, how, { validate, decide, judge });
      if ('forward' in r) {
        const op = 'approve' in how ? 'approve' : 'deny' in how ? 'deny' : 'approval.expire';
        return forwardAdmin<Outcome | undefined>(transport, r.forward, op, {
          intentId,
          ...('approve' in how ? how.approve : 'deny' in how ? how.deny : {}),
        });
      }
      await r.committed;
      if (r.refused) throw r.refused;
      return r.outcome;
    };
    /**
     * Denies the pending intents whose approval deadline passed; returns the others, as listed.
     * A listing asks the owner of each such actor (in parallel); a node's sweep expires only
     * what it can settle itself (an actor another node owns is that node's sweep's to expire).
     */
    const expireDue = async (opts: { sweep?: boolean } = {}): Promise<PendingApproval[]> => {
      const now = clock.now();
      const out: PendingApproval[] = [];
      const due: PendingRecord[] = [];
      for (const rec of await store.pending()) {
        const view = pendingView(rec);
        if (Date.parse(view.expiresAt) > now) out.push(view);
        else due.push(rec);
      }
      await Promise.all(
        due.map(async (rec) => {
          try {
            if (!opts.sweep) return void (await settle(rec.intentId, { expire: true }));
            const r = await host.settle(rec.intentId, { expire: true }, { validate, decide, judge });
            if ('forward' in r) return;
            await r.committed;
          } catch (err) {
            logger.warn({ intent: rec.intentId, err }, 'expired pending intent not settled yet; it is denied at the next try');
            out.push(pendingView(rec));
          }
        }),
      );
      // in the store's order (oldest first), whatever order the settling finished in
      const key = (p: PendingApproval) => [p.createdAt, p.intentId] as const;
      return out.sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
      });
    };

    /** A human's decision on a pending intent, checked before anything is looked up (callers may pass anything). */
    const settleArgs = <S extends z.ZodType>(schema: S, args: unknown, what: string): z.output<S> => {
      const p = schema.safeParse(args);
      if (!p.success) throw new ValidationError(`invalid ${what} arguments`, zodIssues(p.error));
      assertUnicode(p.data, '', `invalid ${what} arguments`);
      return p.data;
    };

    let stopped = false;
    const runtime: Runtime = {
      node,
      mode: clusterParts ? 'cluster' : 'embedded',
      dataDir: lock?.dataDir ?? '',
      transport,
      authorityKeyId: key.keyId,
      authorityKeys: () => (clusterParts ? clusterParts.publishedKeys() : Promise.resolve([key.publicInfo()])),
      logger,
      runtimeChain: chainName,
      store,
      async propose(raw, popts = {}) {
        // The embedding application speaks for its proposers: send on the principal-bound
        // subject, so nodes that require one accept in-process proposals too.
        const { target, proposer } = (typeof raw === 'object' && raw !== null ? raw : {}) as { target?: unknown; proposer?: unknown };
        const t = typeof target === 'string' ? target : '';
        const subject =
          typeof proposer === 'string' && PrincipalSchema.safeParse(proposer).success ? Subjects.intentAs(proposer, t) : Subjects.intent(t);
        const reply = await transport.request(subject, raw, { timeoutMs: popts.timeoutMs ?? proposeTimeoutMs });
        return reply.data as Outcome;
      },
      accept(raw) {
        const t = (typeof raw === 'object' && raw !== null ? (raw as { target?: unknown }).target : undefined) ?? '';
        return intake.handle(raw, Subjects.intent(typeof t === 'string' ? t : '')).catch((e: unknown) => failedOutcome(raw, e));
      },
      spawn: (address, input, sopts) => host.spawn(address, input, { ifAbsent: sopts?.ifAbsent === true }),
      actor: (address) => host.detail(address),
      hosting: (address) => host.local(address),
      listActors: () => host.list(),
      listActorsPage: async (args) => host.listPage(parseActorPageArgs(args)),
      definitions: () => registry.list(),
      async signal(address, event, reason) {
        const r = await host.signal(address, event, reason);
        return 'forward' in r ? forwardAdmin<Fact>(transport, r.forward, 'signal', { address, event, reason }) : r;
      },
      async restartActor(address, by, reason) {
        const r = await host.restartActor(address, { by, ...(reason !== undefined ? { reason } : {}) });
        return 'forward' in r
          ? forwardAdmin<ActorInfo>(transport, r.forward, 'actor.restart', { address, by, ...(reason !== undefined ? { reason } : {}) })
          : r;
      },
      async timers(topts) {
        const limit = topts?.limit ?? 1000;
        // the actors in memory here are listed from memory: ask the store for enough besides them
        return timerRows(await store.timers(Math.min(100_000, limit + host.activeCount)), host.activeTimers(), limit);
      },
      fireDueTimers: () => host.fireDueTimers(),
      async effects(eopts) {
        const limit = eopts?.limit ?? 1000;
        return effectRows(await store.timers(100_000), host.activeEffects(), limit);
      },
      async stopActor(address, reason) {
        const r = await host.stopActor(address, reason);
        if (r && 'forward' in r) await forwardAdmin(transport, r.forward, 'actor.stop', { address, reason });
      },
      passivate: (address) => host.passivate(address),
      passivateIdle: (idleMs) => host.passivateIdle(idleMs),
      grants: {
        issue: (req) => grantBook.issue(req),
        ensure: (req) => grantBook.ensure(req),
        revoke: (id, by, reason) => grantBook.revoke(id, by, reason),
        delegate: (req) => grantBook.delegate(req),
        list: () => [...grantBook.list()],
        show: (id) => grantView(grantBook.list(), id, clock.now()),
      },
      policies: {
        apply: (source, by) => policyBook.apply(source, by),
        list: () => policyBook.list(),
        show: (version) => policyBook.get(version),
        version: () => policyBook.current()?.version ?? 0,
        waitFor: (version, timeoutMs) => policyBook.waitFor(version, timeoutMs),
      },
      approvals: {
        list: () => expireDue(),
        approve: async (intentId, by, note) => {
          const a = settleArgs(ApproveArgs, { intentId, by, ...(note !== undefined ? { note } : {}) }, 'approve');
          return (await settle(a.intentId, { approve: { by: a.by, ...(a.note ? { note: a.note } : {}) } }))!;
        },
        deny: async (intentId, by, reason) => {
          const a = settleArgs(DenyArgs, { intentId, by, reason }, 'deny');
          return (await settle(a.intentId, { deny: { by: a.by, reason: a.reason } }))!;
        },
        expire: async (intentId) => settle(settleArgs(ExpireArgs, { intentId }, 'approval.expire').intentId, { expire: true }),
      },
      journal: reader,
      advertiseAdmin: (adminUrl, adminToken) => lock?.writeOwner({ ...owner, adminUrl, adminToken }),
      onFact: (l) => {
        factListeners.add(l);
        return () => factListeners.delete(l);
      },
      onInspect: (l) => host.onInspect(l),
      metrics: () => metrics.text(),
      stats: () => ({ active: host.activeCount, flushes: sqlite?.flushes ?? 0, maxBatch: sqlite?.maxBatch ?? 0 }),
      async stop(sopts = {}) {
        if (stopped) return;
        stopped = true;
        intake.close();
        authorityService.close();
        await store.drain().catch(() => {});
        // `release: false` simulates death (tests): leases are neither renewed nor released.
        releaseOnStop = sopts.release ?? true;
        await cleanup();
        logger.info('runtime stopped');
      },
    };
    // Operator requests over NATS (both modes), bound to the operator's identity
    // (ice.admin.as.<principal>.<op>); strict nodes refuse the unbound ice.admin.<op>.
    if (transport.kind === 'nats')
      cleanups.push(serveAdminOverNats(runtime, transport, { requireIdentity: opts.requirePrincipalSubject === true, logger }));
    if (opts.publishInspection) cleanups.push(publishInspection(runtime, transport));
    return runtime;
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** A node's own subjects (closed to clients by NATS permissions): `ice.node.<node>.<what>`. */
export const nodeSubject = (node: string, what: string): string => `ice.node.${node}.${what}`;

/** Runs an admin operation on the node that owns the actor it concerns. */
async function forwardAdmin<T>(transport: Transport, owner: string, op: string, args: unknown): Promise<T> {
  const reply = (await transport.request(nodeSubject(owner, `admin.${op}`), args, { timeoutMs: 10_000 })).data as {
    result?: T;
    error?: { code: string; message: string; action?: ErrorAction };
  };
  if (reply.error) throw new IceError(reply.error.code, reply.error.message.replace(/^E_[A-Z_]+: /, ''), reply.error.action ?? 'retry');
  return reply.result as T;
}

export type { PendingRecord, Applied };
export { isAddress, splitAddress, ensureError };
