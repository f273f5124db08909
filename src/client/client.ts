import { randomUUID } from 'node:crypto';
import { zodIssues } from '../authority/validate.js';
import { ClosedError, NoRespondersError, TimeoutError, ValidationError, ensureError, type IssueDetail } from '../errors.js';
import {
  ACTOR_KIND_RE,
  DEFAULT_LIMITS,
  FactSchema,
  IntentSchema,
  OutcomeSchema,
  Subjects,
  checkJsonShape,
  isAddress,
  jsonByteLength,
  type Fact,
  type Intent,
  type IntentInput,
  type JsonLimits,
  type Outcome,
} from '../protocol/index.js';
import { NatsTransport } from '../transport/nats-transport.js';
import type { NatsAuthOptions } from '../transport/nats-auth.js';
import type { Subscription, Transport } from '../transport/transport.js';
import { IntentRejectedError, ProtocolError } from './errors.js';
import { requestDelegation, requestGrantView, type DelegateInput } from './grant-requests.js';
import type { GrantView } from '../authority/grant-view.js';
import type { Grant } from '../protocol/index.js';

/** An intent as a caller writes it: `v`, `params` and `id` may be omitted (an id is generated). */
export type ProposeInput = Omit<IntentInput, 'id'> & { id?: string | undefined };

export interface ClientOptions {
  /** Default per-attempt timeout of `propose`, in ms. Default 10 000. */
  timeoutMs?: number;
  /** Bounds checked locally before sending (the runtime checks its own). Default 64 KiB, depth 16. */
  limits?: Partial<JsonLimits>;
  /** Called when a `watch` handler throws or a message on a watched subject is not a valid fact. */
  onError?: (err: Error, subject: string) => void;
  /** Whether `close()` also closes the transport. Default false for `new IceClient(t)`; `connect()` sets it. */
  ownsTransport?: boolean;
}

/**
 * Servers and authentication as every ICE connection takes them ({@link NatsAuthOptions}:
 * user/password, token, nkey seed file, creds file, TLS, credentials in the URLs), plus:
 */
export interface ConnectOptions extends Omit<ClientOptions, 'ownsTransport'>, NatsAuthOptions {
  /** Connection name shown by the server (`nats server report connections`). */
  name?: string;
  /**
   * Prefix of the private reply subjects (default `_INBOX`). Set it when the NATS account
   * gives each principal its own inbox space (`subscribe: _INBOX.agent:planner.>`), so agents
   * cannot read each other's outcomes; the ice CLI uses `_INBOX.<principal>`.
   */
  inboxPrefix?: string;
  /** Timeout of the initial connect in ms (nats.js default 20 000). */
  connectTimeoutMs?: number;
}

export interface ProposeOptions {
  /** Per-attempt timeout in ms; default the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Alias of `timeoutMs`. */
  timeout?: number;
  /**
   * Further attempts after a timeout or "no responders" (default 0). Every attempt sends the
   * SAME intent (same id, same content), so the runtime executes it at most once and a late
   * attempt receives the outcome of an earlier one.
   */
  retries?: number;
  /** Pause before each further attempt, in ms. Default 250. */
  retryDelayMs?: number;
  /** Throw `IntentRejectedError` instead of returning a `rejected` outcome. Default false. */
  throwOnRejected?: boolean;
}

/** A live subscription to facts; `unsubscribe()` stops delivery. */
export interface FactWatch {
  /** The NATS subject watched, e.g. `ice.fact.deployment.web`. */
  readonly subject: string;
  unsubscribe(): void;
}

export type FactHandler = (fact: Fact) => void | Promise<void>;

export type CheckedIntent = { ok: true; intent: Intent } | { ok: false; issues: IssueDetail[]; intentId?: string };

/**
 * A fresh intent id, `i_<ms base36><32 hex>` (122 random bits): the id is the runtime-wide
 * idempotency key, so two proposers must never pick the same one by chance.
 */
export function newIntentId(): string {
  return `i_${Date.now().toString(36)}${randomUUID().replaceAll('-', '')}`;
}

/**
 * The checks a client can make without the runtime: size, depth and forbidden keys, and the
 * intent envelope (IntentSchema). It cannot check that the kind, the actor or the action
 * exist, or that `params` fit the action; the runtime does.
 */
export function checkIntent(raw: unknown, limits: JsonLimits = DEFAULT_LIMITS): CheckedIntent {
  const obj = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
  const hint = typeof obj?.id === 'string' && obj.id.length <= 128 ? { intentId: obj.id } : {};
  const shape = checkJsonShape(raw, limits);
  if (shape) return { ok: false, issues: [shape], ...hint };
  let bytes: number;
  try {
    bytes = jsonByteLength(raw);
  } catch (e) {
    // e.g. a BigInt somewhere: not JSON
    return { ok: false, issues: [{ path: '', code: 'invalid_json', message: ensureError(e).message, expected: 'a JSON value' }], ...hint };
  }
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      issues: [{ path: '', code: 'too_large', message: `${bytes} bytes exceeds the limit`, expected: `at most ${limits.maxBytes} bytes` }],
      ...hint,
    };
  }
  const parsed = IntentSchema.safeParse(obj && obj.v === undefined ? { ...obj, v: 1 } : raw);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error), ...hint };
  return { ok: true, intent: parsed.data };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A proposer's view of an ICE runtime over a message bus: propose intents, watch facts.
 * Holds no state of its own beyond the connection; the runtime decides and records.
 * @example
 * const ice = await connect({ servers: 'nats://127.0.0.1:4222', name: 'planner' });
 * const out = await ice.propose(
 *   { proposer: 'agent:planner', target: 'deployment/web', action: 'CONFIGURE', params: { version: '1.2.0', replicas: 2 } },
 *   { timeoutMs: 5000, retries: 2 },
 * );
 * if (out.status === 'executed') console.log(`${out.from} → ${out.to}`);
 * await ice.close();
 */
export class IceClient {
  readonly transport: Transport;
  readonly #timeoutMs: number;
  readonly #limits: JsonLimits;
  readonly #onError: (err: Error, subject: string) => void;
  readonly #ownsTransport: boolean;
  readonly #watches = new Set<Subscription>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(transport: Transport, opts: ClientOptions = {}) {
    this.transport = transport;
    this.#timeoutMs = positive(opts.timeoutMs, 10_000, 'timeoutMs');
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.#onError = opts.onError ?? (() => {});
    this.#ownsTransport = opts.ownsTransport ?? false;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Fills in what a caller may omit: `v`, `params` and a fresh `id`. Use it when you want to
   * know the id before proposing, e.g. to retry later yourself after `propose` gave up.
   * Does not validate (propose does).
   */
  prepare<T extends ProposeInput>(input: T): T & { v: 1; id: string; params: Record<string, unknown> } {
    return { ...input, v: 1, id: input.id ?? newIntentId(), params: input.params ?? {} };
  }

  /**
   * Proposes an intent and resolves with its outcome (`executed`, `denied`, `pending`,
   * `rejected` or `failed`). An intent that fails the local checks is rejected without a round
   * trip (outcome without `seq`). Retries on timeout / no responders reuse the same intent.
   * @throws TimeoutError | NoRespondersError after the last attempt (retry later with the SAME id)
   * @throws IntentRejectedError when rejected and `throwOnRejected` is set
   * @throws ProtocolError when the reply is not an outcome for this intent
   * @throws ClosedError when the client or its transport is closed
   */
  async propose(input: ProposeInput, opts: ProposeOptions = {}): Promise<Outcome> {
    if (this.#closed) throw new ClosedError('ice client');
    const timeoutMs = positive(opts.timeoutMs ?? opts.timeout, this.#timeoutMs, 'timeoutMs');
    const retries = nonNegativeInt(opts.retries, 0, 'retries');
    const retryDelayMs = nonNegativeInt(opts.retryDelayMs, 250, 'retryDelayMs');

    const raw: unknown = isPlainObject(input) && (input as { id?: unknown }).id === undefined ? { ...input, id: newIntentId() } : input;
    const checked = checkIntent(raw, this.#limits);
    if (!checked.ok) {
      const outcome = {
        v: 1 as const,
        status: 'rejected' as const,
        ...(checked.intentId ? { intentId: checked.intentId } : {}),
        issues: checked.issues,
      };
      if (opts.throwOnRejected) throw new IntentRejectedError(outcome, true);
      return outcome;
    }
    const intent = checked.intent;
    const subject = Subjects.intentAs(intent.proposer, intent.target);

    for (let attempt = 0; ; attempt++) {
      let data: unknown;
      try {
        data = (await this.transport.request(subject, intent, { timeoutMs })).data;
      } catch (e) {
        const retryable = e instanceof TimeoutError || e instanceof NoRespondersError;
        if (!retryable || attempt >= retries || this.#closed) throw e;
        if (retryDelayMs > 0) await sleep(retryDelayMs);
        if (this.#closed) throw e;
        continue;
      }
      const outcome = this.#outcome(subject, intent, data);
      if (outcome.status === 'rejected' && opts.throwOnRejected) throw new IntentRejectedError(outcome, false);
      return outcome;
    }
  }

  /**
   * Subscribes to committed facts: `kind/id` for one actor, `kind/*` for every actor of a
   * kind, `*` for everything (including actorless facts such as grants). Resolves once the
   * server has the subscription, so facts of intents proposed afterwards are not missed.
   * Delivery is at most once (core NATS): a watcher that was disconnected misses facts; use
   * `seq` (and `prev`/`hash`) to notice gaps.
   */
  async watch(address: string, onFact: FactHandler): Promise<FactWatch> {
    if (this.#closed) throw new ClosedError('ice client');
    const subject = factSubject(address);
    const sub = this.transport.subscribe(subject, async (msg) => {
      const parsed = FactSchema.safeParse(msg.data);
      if (!parsed.success) {
        this.#onError(new ProtocolError('fact', msg.subject, msg.data, zodIssues(parsed.error)), msg.subject);
        return;
      }
      try {
        await onFact(parsed.data);
      } catch (e) {
        this.#onError(ensureError(e), msg.subject);
      }
    });
    this.#watches.add(sub);
    try {
      await this.transport.flush();
    } catch (e) {
      this.#watches.delete(sub);
      sub.unsubscribe();
      throw e;
    }
    return {
      subject,
      unsubscribe: () => {
        this.#watches.delete(sub);
        sub.unsubscribe();
      },
    };
  }

  /**
   * Delegates a narrower grant from one `req.by` holds, sent as `req.by` on
   * `ice.admin.as.<by>.grant.delegate` (NATS permissions can let each agent publish only its
   * own subjects). Terms left out are the parent's; `maxUses` is needed when the parent has one.
   * @example
   * const g = await ice.delegate({ parentId: 'g-planner', by: 'agent:planner', subject: 'agent:deployer',
   *   scope: 'deployment/web:DEPLOY', maxUses: 1 });
   * @throws DelegationRefusedError when a term is wider than the parent's (`field`, `expected`), `by`
   *   does not hold the parent, or the parent is revoked, expired or used up
   * @throws ValidationError when the request is malformed (checked before sending)
   * @throws TimeoutError | NoRespondersError when no node answers
   */
  async delegate(req: DelegateInput, opts: { timeoutMs?: number } = {}): Promise<Grant> {
    if (this.#closed) throw new ClosedError('ice client');
    return requestDelegation(this.transport, req, positive(opts.timeoutMs, this.#timeoutMs, 'timeoutMs'));
  }

  /** A grant with its status, its chain (root → … → it) and its delegated children, asked for as `as`. */
  async grant(id: string, as: string, opts: { timeoutMs?: number } = {}): Promise<GrantView> {
    if (this.#closed) throw new ClosedError('ice client');
    return requestGrantView(this.transport, as, id, positive(opts.timeoutMs, this.#timeoutMs, 'timeoutMs'));
  }

  /** Stops every watch and, when the client owns it, drains and closes the connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const s of this.#watches) s.unsubscribe();
      this.#watches.clear();
      if (this.#ownsTransport) await this.transport.close();
    })();
    return this.#closing;
  }

  #outcome(subject: string, intent: Intent, data: unknown): Outcome {
    const parsed = OutcomeSchema.safeParse(data);
    if (!parsed.success) throw new ProtocolError('outcome', subject, data, zodIssues(parsed.error));
    const outcome = parsed.data;
    if (outcome.intentId !== undefined && outcome.intentId !== intent.id) {
      throw new ProtocolError('outcome', subject, data, [
        {
          path: 'intentId',
          code: 'intent_mismatch',
          message: `outcome is for intent ${outcome.intentId}, not ${intent.id}`,
          expected: intent.id,
        },
      ]);
    }
    return outcome;
  }
}

/** Connects to NATS and returns a client that owns the connection. */
export async function connect(opts: ConnectOptions): Promise<IceClient> {
  const client: ClientOptions = { ownsTransport: true };
  if (opts.timeoutMs !== undefined) client.timeoutMs = opts.timeoutMs;
  if (opts.limits !== undefined) client.limits = opts.limits;
  if (opts.onError !== undefined) client.onError = opts.onError;
  positive(opts.timeoutMs, 1, 'timeoutMs'); // fail before opening a connection we would have to close
  // everything but the client's own options is the connection's (every auth field included)
  const { timeoutMs: _timeout, limits: _limits, onError, ...connection } = opts;
  const transport = await NatsTransport.connect({ ...connection, ...(onError !== undefined ? { onHandlerError: onError } : {}) });
  return new IceClient(transport, client);
}

function factSubject(address: string): string {
  if (address === '*') return Subjects.factAll;
  if (isAddress(address)) return Subjects.fact(address);
  const slash = address.indexOf('/');
  if (slash > 0 && address.slice(slash + 1) === '*' && ACTOR_KIND_RE.test(address.slice(0, slash))) {
    return `ice.fact.${address.slice(0, slash)}.*`;
  }
  throw new ValidationError(`cannot watch ${JSON.stringify(address)}`, [
    {
      path: 'address',
      code: 'invalid_address',
      message: `not an actor address: ${JSON.stringify(address)}`,
      expected: '"kind/id", "kind/*" or "*"',
    },
  ]);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number of ms, got ${v}`);
  return v;
}

function nonNegativeInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}
