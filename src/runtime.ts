import { join, resolve } from 'node:path';
import { hostname } from 'node:os';
import { exampleActors } from '../actors/index.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import {
  DEFAULT_LIMITS,
  PrincipalSchema,
  Subjects,
  isAddress,
  splitAddress,
  type Decision,
  type Fact,
  type Grant,
  type GrantRequest,
  type Intent,
  type IntentInput,
  type JsonLimits,
  type Outcome,
} from './protocol/index.js';
import {
  Authority,
  AuthorityKey,
  AuthorityService,
  GrantBook,
  LocalTrust,
  validateIntent,
  type PolicyRule,
  type ValidatedIntent,
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
} from './host/index.js';
import { Journal, type VerifyResult } from './journal/index.js';
import { DataDirLock, SqliteStore } from './store/index.js';
import { EmbeddedTransport, type Transport } from './transport/index.js';
import { systemClock, type Clock } from './util/clock.js';
import { randomIds, type IdGen } from './util/ids.js';
import { createLogger, type Logger } from './util/logger.js';

export interface RuntimeOptions {
  /** Where the store, the authority key and the owner lock live. Default `./.ice`. */
  dataDir?: string;
  /** Actor kinds to host. Default: the examples (`run`, `deployment`). */
  actors?: ActorDefinition[];
  /** Runtime-wide policy rules (kinds bring their own too). */
  policies?: PolicyRule[];
  /** Message bus; default an embedded one. */
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
   * Idle actors are passivated after this long (snapshot kept, memory freed; the next use
   * re-activates them). Default 10 minutes; 0 turns it off.
   */
  passivateAfterMs?: number;
  /**
   * Accept intents only on `ice.as.<principal>.<kind>.<id>` with a matching proposer (see
   * docs/protocol.md, Security). `rt.propose` always uses those subjects.
   */
  requirePrincipalSubject?: boolean;
  /**
   * How in-process decisions are signed: `batch` (default) — the journal's checkpoint
   * signature over each group commit attests them; `each` — every decision also carries its
   * own ed25519 signature (~30 µs per intent). Decisions that cross a transport are always
   * signed and verified.
   */
  signDecisions?: 'batch' | 'each';
}

export interface ProposeOptions {
  timeoutMs?: number;
}

export interface PendingApproval {
  intentId: string;
  actor: string;
  intent: Intent;
  decision: Decision;
  createdAt: string;
}

/**
 * An ICE runtime in this process: an authority, a host, a journal in `<dataDir>/ice.db`,
 * and the transport they talk over. See README for the tour.
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
  readonly dataDir: string;
  readonly transport: Transport;
  readonly authorityKeyId: string;
  readonly logger: Logger;
  /** Accepts anything: malformed input comes back as a `rejected` outcome. */
  propose(intent: IntentInput | Record<string, unknown>, opts?: ProposeOptions): Promise<Outcome>;
  spawn(address: string, input?: unknown): Promise<ActorInfo>;
  actor(address: string): ActorDetail | undefined;
  listActors(): ActorInfo[];
  definitions(): ActorDefinition[];
  signal(address: string, event: { type: string } & Record<string, unknown>, reason: string): Promise<Fact>;
  stopActor(address: string, reason: string): Promise<void>;
  passivate(address: string): boolean;
  /** Passivates every actor idle for `idleMs` or more (by the runtime's clock); returns how many. */
  passivateIdle(idleMs: number): number;
  readonly grants: {
    issue(req: GrantRequest): Promise<Grant>;
    revoke(id: string, by?: string, reason?: string): Promise<Grant>;
    list(): Grant[];
  };
  readonly approvals: {
    list(): PendingApproval[];
    approve(intentId: string, by: string, note?: string): Promise<Outcome>;
    deny(intentId: string, by: string, reason: string): Promise<Outcome>;
  };
  readonly journal: {
    verify(): VerifyResult;
    tail(opts?: { limit?: number; actor?: string; beforeSeq?: number }): Fact[];
    read(fromSeq?: number, limit?: number): Fact[];
    factsOfIntent(intentId: string): Fact[];
    fact(seq: number): Fact | undefined;
    readonly headSeq: number;
  };
  onFact(listener: (f: Fact) => void): () => void;
  onInspect(listener: (r: InspectRecord) => void): () => void;
  /** Tells other processes (the CLI) where this owner's admin endpoint listens (`owner.json`, 0600). */
  advertiseAdmin(adminUrl: string, adminToken: string): void;
  /** Journal group-commit statistics. */
  stats(): { actors: number; active: number; headSeq: number; flushes: number; maxBatch: number };
  stop(): Promise<void>;
}

export async function createRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  const dataDir = resolve(opts.dataDir ?? './.ice');
  const node = opts.node ?? `${hostname()}-${process.pid}`;
  const logger = (opts.logger ?? createLogger()).child({ node });
  const clock = opts.clock ?? systemClock;
  const ids = opts.ids ?? randomIds;
  const limits: JsonLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const registry = new ActorRegistry(opts.actors ?? exampleActors);
  const proposeTimeoutMs = opts.proposeTimeoutMs ?? 30_000;

  const lock = DataDirLock.acquire(dataDir);
  let store: SqliteStore | undefined;
  try {
    store = new SqliteStore(dataDir);
  } catch (e) {
    lock.release();
    throw e;
  }
  let ready = false;
  try {
    const st = store;
    // Assigned below; the journal's failure callback needs it first.
    // eslint-disable-next-line prefer-const
    let host!: Host;
    const key = AuthorityKey.loadOrCreate(join(dataDir, 'authority.key'));
    const journal = new Journal(st, {
      clock,
      attest: (seq, hash) => ({ keyId: key.keyId, sig: key.signHead(seq, hash) }),
      onFlushFailed: (actors, err) => {
        logger.error({ err, actors: [...actors] }, 'group commit failed; reloading affected actors from disk');
        host.evict(actors);
      },
    });
    const grantBook = new GrantBook(st.grants(), journal, clock, ids);
    const authority = new Authority({
      key,
      grants: grantBook,
      journal,
      clock,
      ids,
      ...(opts.policies ? { policies: opts.policies } : {}),
      ...(opts.decisionTtlMs !== undefined ? { decisionTtlMs: opts.decisionTtlMs } : {}),
    });
    const trust = new LocalTrust();
    host = new Host({ node, registry, store: st, journal, clock, logger, authorityKeys: new Map([[key.keyId, key]]), trust });
    const transport =
      opts.transport ?? new EmbeddedTransport({ onHandlerError: (err, subject) => logger.error({ err, subject }, 'handler failed') });
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
    const intake = new Intake({
      registry,
      host,
      journal,
      store: st,
      transport,
      logger,
      limits,
      decideTimeoutMs: proposeTimeoutMs,
      trust,
      ...(opts.requirePrincipalSubject ? { requirePrincipalSubject: true } : {}),
      ...(transport.kind === 'embedded' ? {} : { localAuthority: authorityService }),
    });
    intake.listen();
    const unpublish = journal.onFact((f) => {
      try {
        transport.publish(Subjects.fact(f.actor), f);
      } catch {
        // transport closing; the fact is durable regardless
      }
    });
    const passivateAfterMs = opts.passivateAfterMs ?? 600_000;
    const sweeper =
      passivateAfterMs > 0
        ? setInterval(
            () => {
              const n = host.passivateIdle(passivateAfterMs);
              if (n > 0) logger.debug({ passivated: n }, 'idle actors passivated');
            },
            Math.max(1000, Math.min(passivateAfterMs / 2, 60_000)),
          )
        : undefined;
    sweeper?.unref();
    const owner = { pid: process.pid, node, startedAt: new Date(clock.now()).toISOString() };
    lock.writeOwner(owner);
    logger.info({ dataDir, actors: host.size, headSeq: journal.headSeq, transport: transport.kind }, 'runtime started');

    /** Runs a human's decision on a pending intent inside its actor's turn; resolves once durable. */
    const settlePending = async (
      intentId: string,
      settle: (v: ValidatedIntent, p: PendingApproval) => Applied | Promise<Applied>,
    ): Promise<Outcome> => {
      const p = st.pending(intentId)[0] as PendingApproval | undefined;
      if (!p) throw new NotFoundError(`pending intent ${intentId}`);
      const v = validateIntent(p.intent, registry, limits);
      if (!v.ok) throw new ValidationError(`pending intent ${intentId} no longer validates`, v.issues);
      const applied = await host.withActor(v.intent.target, () => {
        if (st.pending(intentId).length === 0) throw new ConflictError(`intent ${intentId} is no longer pending`);
        return settle(v, p);
      });
      await applied.committed;
      return applied.outcome;
    };

    let stopped = false;
    const runtime: Runtime = {
      node,
      dataDir,
      transport,
      authorityKeyId: key.keyId,
      logger,
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
      spawn: (address, input) => host.spawn(address, input),
      actor: (address) => host.detail(address),
      listActors: () => host.list(),
      definitions: () => registry.list(),
      signal: (address, event, reason) => host.signal(address, event, reason),
      stopActor: (address, reason) => host.stopActor(address, reason),
      passivate: (address) => host.passivate(address),
      passivateIdle: (idleMs) => host.passivateIdle(idleMs),
      grants: {
        issue: (req) => grantBook.issue(req),
        revoke: (id, by, reason) => grantBook.revoke(id, by, reason),
        list: () => [...grantBook.list()],
      },
      approvals: {
        list: () => st.pending() as PendingApproval[],
        async approve(intentId, by, note) {
          return settlePending(intentId, async (v) => {
            const decision = await intake.decide(v.intent, v.digest, by);
            return host.apply(v.intent, v.digest, decision, { approval: { by, ...(note ? { note } : {}) } });
          });
        },
        deny(intentId, by, reason) {
          return settlePending(intentId, (v, p) => host.refusePending(v.intent, v.digest, p.decision, by, reason));
        },
      },
      journal: {
        verify: () => journal.verify((cp) => cp.keyId === key.keyId && key.verifyHead(cp.seq, cp.hash, cp.sig)),
        tail: (o) => journal.tail(o),
        read: (from, limit) => journal.read(from, limit),
        factsOfIntent: (id) => journal.factsOfIntent(id),
        fact: (seq) => journal.fact(seq),
        get headSeq() {
          return journal.headSeq;
        },
      },
      advertiseAdmin: (adminUrl, adminToken) => lock.writeOwner({ ...owner, adminUrl, adminToken }),
      onFact: (l) => journal.onFact(l),
      onInspect: (l) => host.onInspect(l),
      stats: () => ({
        actors: host.size,
        active: host.activeCount,
        headSeq: journal.headSeq,
        flushes: journal.flushes,
        maxBatch: journal.maxBatch,
      }),
      async stop() {
        if (stopped) return;
        stopped = true;
        if (sweeper) clearInterval(sweeper);
        intake.close();
        authorityService.close();
        await journal.drain();
        unpublish();
        host.stopAll();
        if (!opts.transport) await transport.close();
        await st.close();
        lock.release();
        logger.info('runtime stopped');
      },
    };
    ready = true;
    return runtime;
  } finally {
    if (!ready) {
      // Anything that failed after the lock was taken must not leave the dir locked.
      await store.close().catch(() => {});
      lock.release();
    }
  }
}

export { isAddress, splitAddress };
