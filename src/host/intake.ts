import { ensureError, IceError, type IssueDetail } from '../errors.js';
import {
  FactType,
  Origin,
  Subjects,
  parseIntentSubject,
  type Decision,
  type Intent,
  type JsonLimits,
  type Outcome,
} from '../protocol/index.js';
import { validateIntent, type LocalTrust, type ValidatedIntent } from '../authority/index.js';
import type { Transport, Subscription } from '../transport/index.js';
import type { Logger } from '../util/logger.js';
import type { ActorRegistry } from './definition.js';
import type { Host } from './host.js';

export interface IntakeOptions {
  registry: ActorRegistry;
  host: Host;
  transport: Transport;
  logger: Logger;
  limits: JsonLimits;
  decideTimeoutMs: number;
  trust?: LocalTrust;
  /**
   * Accept intents only on principal-bound subjects (`ice.as.<principal>.<kind>.<id>`), whose
   * principal must be the intent's proposer. With NATS permissions per principal this
   * authenticates proposers.
   */
  requirePrincipalSubject?: boolean;
  /**
   * A co-located authority to ask directly instead of over the transport (a round trip to
   * this same process would only add latency and an ed25519 sign + verify).
   */
  localAuthority?: {
    decideLocal(intent: unknown, approvedBy?: string): { decision?: Decision; error?: { code: string; message: string } };
  };
  /**
   * Hands an intent to the process that owns its actor (a cluster's node-to-node forward).
   * Without it every actor is this process's.
   */
  forward?: (owner: string, raw: unknown) => Promise<Outcome>;
}

/**
 * The door intents come in by, in both deployments: `ice.intent.<kind>.<id>` and
 * `ice.as.<principal>.<kind>.<id>` (queue group `ice.intake`). Validates and checks the
 * subject (a rejection is an `intent.rejected` fact on this process's runtime chain), has the
 * host execute the intent in its actor's turn — where a repeat is answered from the stored
 * outcome — or forwards it to the actor's owner, and replies only once the turn is durable.
 */
export class Intake {
  readonly #o: IntakeOptions;
  readonly #inflight = new Map<string, { digest: string; promise: Promise<Outcome> }>();
  #subs: Subscription[] = [];

  constructor(opts: IntakeOptions) {
    this.#o = opts;
  }

  listen(): void {
    for (const subject of [Subjects.intentAll, Subjects.intentAsAll]) {
      this.#subs.push(
        this.#o.transport.subscribe(
          subject,
          async (msg) => {
            const outcome = await this.handle(msg.data, msg.subject).catch((e: unknown) => failedOutcome(msg.data, e));
            msg.respond(outcome);
          },
          { queue: 'ice.intake' },
        ),
      );
    }
  }

  close(): void {
    for (const s of this.#subs) s.unsubscribe();
    this.#subs = [];
  }

  /**
   * @param subject the subject the intent arrived on; it must name the intent's target, so
   *   NATS permissions on `ice.intent.<kind>.>` really limit what a client can reach.
   *   Undefined for a forward from another node's intake, which checked it.
   * @param opts.forwarded set for a forward: this process executes or says it is not the owner.
   */
  async handle(raw: unknown, subject?: string, opts: { forwarded?: boolean } = {}): Promise<Outcome> {
    const v = validateIntent(raw, this.#o.registry, this.#o.limits);
    if (subject !== undefined) {
      // Every request on an intent subject is answered, a malformed subject included (a
      // client told to retry on no responders would otherwise retry forever).
      const issue = this.#subjectIssue(v.ok ? v.intent : undefined, subject);
      if (issue) {
        const id = v.ok ? v.intent.id : v.intentId;
        const target = v.ok ? v.intent.target : v.target;
        return this.#reject(v.ok ? [issue] : [issue, ...v.issues], id, target);
      }
    }
    if (!v.ok) return this.#reject(v.issues, v.intentId, v.target);
    const { intent, digest } = v;

    const inflight = this.#inflight.get(intent.id);
    if (inflight) {
      if (inflight.digest !== digest) return this.#conflict(intent);
      return inflight.promise;
    }
    // Registered before the first await, so a second request with this id shares this one.
    // Whether the id was executed before is asked inside the actor's turn (Host.execute), on
    // the node that owns the actor: one lookup where it is authoritative, not one more here.
    const promise = this.#run(v, raw, opts.forwarded === true);
    this.#inflight.set(intent.id, { digest, promise });
    try {
      return await promise;
    } finally {
      this.#inflight.delete(intent.id);
    }
  }

  /**
   * What is wrong with the subject an intent arrived on, given its body (`intent`, when the
   * body is a valid intent): the subject itself (token count, principal encoding, target
   * tokens), or how it fits the body. `expected` is the exact subject to use when the body
   * says which.
   */
  /** The subject `intent` should have come on: principal-bound if it was (or must be), for `principal` or its proposer. */
  #subjectFor(intent: Intent, bound: boolean, principal = intent.proposer): string {
    return bound || this.#o.requirePrincipalSubject ? Subjects.intentAs(principal, intent.target) : Subjects.intent(intent.target);
  }

  #subjectIssue(intent: Intent | undefined, subject: string): IssueDetail | undefined {
    const parsed = parseIntentSubject(subject);
    if (!parsed.ok) {
      const p = parsed.issue;
      // `Subjects.intent(t)` of a `t` that is no address: the body's own target issue says it.
      if (!intent && p.code === 'subject_target' && subject.endsWith(INVALID_TARGET_TOKENS)) return undefined;
      if (!intent) return p;
      return { ...p, expected: this.#subjectFor(intent, parsed.principalBound) };
    }
    // Without a valid body only the subject itself can be judged; the body's issues follow.
    if (!intent) return undefined;
    const { principal, target } = parsed;
    if (target !== intent.target) {
      return {
        path: 'target',
        code: 'subject_mismatch',
        message: `intent for ${intent.target} arrived on ${subject}`,
        expected: this.#subjectFor(intent, principal !== undefined, principal),
      };
    }
    if (principal !== undefined && principal !== intent.proposer) {
      return {
        path: 'proposer',
        code: 'proposer_mismatch',
        message: `proposer ${intent.proposer} sent on the subject of ${principal}`,
        expected: principal,
      };
    }
    if (principal === undefined && this.#o.requirePrincipalSubject) {
      return {
        path: 'proposer',
        code: 'unauthenticated_subject',
        message: 'this node accepts intents only on principal-bound subjects',
        expected: Subjects.intentAs(intent.proposer, intent.target),
      };
    }
    return undefined;
  }

  async #run(v: ValidatedIntent, raw: unknown, forwarded: boolean): Promise<Outcome> {
    const { intent, digest } = v;
    const host = this.#o.host;
    this.#o.trust?.vouchIntent(v);
    const r = await host.execute(intent, digest, (i, d, by) => this.decide(i, d, by), { event: v.event });
    if ('missing' in r) {
      return this.#reject(
        [{ path: 'target', code: 'unknown_actor', message: `no actor ${intent.target}`, expected: 'an existing actor (spawn it first)' }],
        intent.id,
        intent.target,
      );
    }
    if ('conflict' in r) return this.#conflict(intent);
    if ('forward' in r) {
      if (forwarded || !this.#o.forward) {
        return failedOutcome(
          intent,
          new IceError('E_NOT_OWNER', `${host.node} does not own ${intent.target} (${r.forward} does); retry`, 'retry'),
        );
      }
      return this.#o.forward(r.forward, raw);
    }
    await r.committed;
    return r.outcome;
  }

  /**
   * Asks the authority: the co-located one directly, else over the transport. `approvedBy`
   * (a human approving a pending intent) satisfies the approval rules.
   */
  async decide(intent: Intent, digest: string, approvedBy?: string): Promise<Decision> {
    const data = this.#o.localAuthority
      ? this.#o.localAuthority.decideLocal(intent, approvedBy)
      : ((
          await this.#o.transport.request(
            Subjects.decide,
            { intent, digest, ...(approvedBy !== undefined ? { approvedBy } : {}) },
            { timeoutMs: this.#o.decideTimeoutMs },
          )
        ).data as { decision?: Decision; error?: { code: string; message: string } });
    if (!data.decision) throw new IceError(data.error?.code ?? 'E_AUTHORITY', data.error?.message ?? 'authority gave no decision', 'retry');
    return data.decision;
  }

  async #reject(issues: IssueDetail[], intentId?: string, target?: string): Promise<Outcome> {
    const [f] = await this.#o.host.record([
      {
        type: FactType.intentRejected,
        origin: Origin.proposer,
        ...(intentId ? { intentId } : {}),
        data: { issues, ...(target ? { target } : {}) },
      },
    ]);
    this.#o.logger.info({ intent: intentId, actor: target, issues: issues.map((i) => `${i.path}: ${i.code}`) }, 'intent rejected');
    return { v: 1, status: 'rejected', ...(intentId ? { intentId } : {}), issues, chain: this.#o.host.runtimeChain, seq: f!.seq };
  }

  #conflict(intent: Intent): Promise<Outcome> {
    return this.#reject(
      [
        {
          path: 'id',
          code: 'idempotency_conflict',
          message: `intent id ${intent.id} was already used for a different intent`,
          expected: 'a new id for a new intent',
        },
      ],
      intent.id,
      intent.target,
    );
  }
}

const INVALID_TARGET_TOKENS = '._invalid._';

/** A timeout of the messaging or storage layer (nats.js names its errors `TimeoutError`). */
function isTimeout(err: Error): boolean {
  return err.name === 'TimeoutError' || /^timeout$/i.test(err.message);
}

/** The outcome for an intent whose handling threw: `failed`, with the error's stable code. */
export function failedOutcome(raw: unknown, e: unknown): Outcome {
  const err = ensureError(e);
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as { id?: unknown; target?: unknown };
  return {
    v: 1,
    status: 'failed',
    intentId: typeof r.id === 'string' ? r.id : '',
    actor: typeof r.target === 'string' ? r.target : '',
    error: { code: err instanceof IceError ? err.code : isTimeout(err) ? 'E_TIMEOUT' : 'E_INTERNAL', message: err.message },
  };
}
