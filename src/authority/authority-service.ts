import { ensureError, IceError } from '../errors.js';
import { Subjects, type JsonLimits } from '../protocol/index.js';
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
  ) {}

  listen(): void {
    this.#sub = this.transport.subscribe(
      Subjects.decide,
      (msg) => {
        try {
          const body = msg.data as { intent?: unknown; approvedBy?: string };
          const local = this.trust !== undefined && this.transport.kind === 'embedded';
          const v = (local ? this.trust!.validated(body.intent) : undefined) ?? validateIntent(body.intent, this.registry, this.limits);
          if (!v.ok) {
            msg.respond({ error: { code: 'E_VALIDATION', message: v.issues.map((i) => `${i.path}: ${i.message}`).join('; ') } });
            return;
          }
          const decision = this.authority.decide({
            intent: v.intent,
            digest: v.digest,
            event: v.event,
            actor: this.oracle.view(v.intent.target),
            run: this.oracle.runView(v.intent.runId),
            kindPolicies: v.def.policies,
            ...(typeof body.approvedBy === 'string' ? { approvedBy: body.approvedBy } : {}),
            sign: !local,
          });
          msg.respond({ decision: local ? this.trust!.vouchDecision(decision) : decision });
        } catch (e) {
          const err = ensureError(e);
          this.logger.error({ err }, 'authority failed to decide');
          msg.respond({ error: { code: err instanceof IceError ? err.code : 'E_AUTHORITY', message: err.message } });
        }
      },
      { queue: 'ice.authority' },
    );
  }

  close(): void {
    this.#sub?.unsubscribe();
  }
}
