import { ensureError, IceError } from '../errors.js';
import { Subjects, type Decision, type JsonLimits } from '../protocol/index.js';
import type { Transport, Subscription } from '../transport/index.js';
import type { ActorRegistry } from '../host/definition.js';
import type { Logger } from '../util/logger.js';
import type { ActorView, Authority, RunView } from './authority.js';
import { validateIntent } from './validate.js';
import type { LocalTrust } from './local-trust.js';

/** Where the authority learns the current state of actors and runs. */
export interface StateOracle {
  view(address: string): ActorView;
  runView(runId: string | undefined): RunView | undefined;
}

/**
 * Serves `ice.authority.decide` (queue group `ice.authority`). The request carries an
 * intent; the service re-validates it itself (it trusts no caller), reads the actor's
 * state from its oracle, decides and replies `{ decision }` or `{ error }`.
 */
export class AuthorityService {
  #sub: Subscription | undefined;
  constructor(
    private readonly authority: Authority,
    private readonly registry: ActorRegistry,
    private readonly oracle: StateOracle,
    private readonly transport: Transport,
    private readonly limits: JsonLimits,
    private readonly logger: Logger,
    /** In-process trust; with an embedded transport, intents and decisions stay local. */
    private readonly trust?: LocalTrust,
    /** Sign in-process decisions too (they are then signed once and never verified here). */
    private readonly signLocal = false,
  ) {}

  listen(): void {
    this.#sub = this.transport.subscribe(
      Subjects.decide,
      (msg) => {
        const body = msg.data as { intent?: unknown; approvedBy?: unknown };
        // Over the embedded bus the request and the reply stay objects of this process.
        msg.respond(this.#decide(body, this.trust !== undefined && this.transport.kind === 'embedded'));
      },
      { queue: 'ice.authority' },
    );
  }

  /**
   * Decides for a caller in this process without a transport hop (a node whose authority
   * is co-located). The decision is vouched for in LocalTrust instead of signed.
   */
  decideLocal(intent: unknown, approvedBy?: string): { decision?: Decision; error?: { code: string; message: string } } {
    return this.#decide({ intent, approvedBy }, this.trust !== undefined);
  }

  #decide(
    body: { intent?: unknown; approvedBy?: unknown },
    local: boolean,
  ): { decision?: Decision; error?: { code: string; message: string } } {
    try {
      const v = (local ? this.trust!.validated(body.intent) : undefined) ?? validateIntent(body.intent, this.registry, this.limits);
      if (!v.ok) return { error: { code: 'E_VALIDATION', message: v.issues.map((i) => `${i.path}: ${i.message}`).join('; ') } };
      const decision = this.authority.decide({
        intent: v.intent,
        digest: v.digest,
        event: v.event,
        actor: this.oracle.view(v.intent.target),
        run: this.oracle.runView(v.intent.runId),
        kindPolicies: v.def.policies,
        ...(typeof body.approvedBy === 'string' ? { approvedBy: body.approvedBy } : {}),
        sign: !local || this.signLocal,
      });
      return { decision: local ? this.trust!.vouchDecision(decision) : decision };
    } catch (e) {
      const err = ensureError(e);
      this.logger.error({ err }, 'authority failed to decide');
      return { error: { code: err instanceof IceError ? err.code : 'E_AUTHORITY', message: err.message } };
    }
  }

  close(): void {
    this.#sub?.unsubscribe();
  }
}
