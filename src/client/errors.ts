import { ErrorAction, IceError, type IssueDetail } from '../errors.js';
import type { Outcome } from '../protocol/index.js';

type RejectedOutcome = Extract<Outcome, { status: 'rejected' }>;

/**
 * An intent was rejected: it is malformed, names an unknown actor/kind/action, has params
 * that do not fit the action, or reuses an id for different content. Resending it unchanged
 * fails the same way; fix it (see `issues`) first. Thrown by `IceClient.propose` only with
 * `throwOnRejected: true`; otherwise the rejected outcome is returned.
 */
export class IntentRejectedError extends IceError {
  override name = 'IntentRejectedError';
  readonly issues: IssueDetail[];
  readonly intentId: string | undefined;
  /** The rejected outcome (for a local rejection it has no `seq`: nothing was journaled). */
  readonly outcome: RejectedOutcome;
  /** True when the client refused the intent before sending it (no round trip). */
  readonly local: boolean;
  constructor(outcome: RejectedOutcome, local: boolean) {
    const summary = outcome.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
    super(
      'E_INTENT_REJECTED',
      `intent${outcome.intentId ? ` ${outcome.intentId}` : ''} rejected${local ? ' locally' : ''}: ${summary}`,
      ErrorAction.reject,
    );
    this.issues = outcome.issues;
    this.intentId = outcome.intentId;
    this.outcome = outcome;
    this.local = local;
  }
}

/**
 * A message on an ICE subject did not fit the protocol: a reply that is not a valid outcome
 * (wrong version or shape, or an outcome for a different intent), or a fact that does not
 * match the fact schema. Something other than an ICE runtime answered or published, or the
 * runtime speaks a newer protocol version.
 */
export class ProtocolError extends IceError {
  override name = 'ProtocolError';
  readonly subject: string;
  /** The offending message body. */
  readonly data: unknown;
  readonly issues: IssueDetail[];
  constructor(what: string, subject: string, data: unknown, issues: IssueDetail[]) {
    const summary = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
    super('E_PROTOCOL', `invalid ${what} on ${subject}: ${summary}`, ErrorAction.terminal);
    this.subject = subject;
    this.data = data;
    this.issues = issues;
  }
}
