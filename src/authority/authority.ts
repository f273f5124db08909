import { DecisionVerificationError } from '../errors.js';
import type { Decision, Intent, Reason, UnsignedDecision, Verdict } from '../protocol/index.js';
import type { Clock } from '../util/clock.js';
import type { IdGen } from '../util/ids.js';
import type { GrantBook } from './grant-book.js';
import { PolicyEffect, ruleApplies, type PolicyRule } from './policy.js';
import { judgeApproval, requirementOf, type ApprovalJudgement, type IsMember } from './approval-requirement.js';
import type { AuthorityKey } from './signer.js';
import type { CompiledPolicySet, PolicyVerdict } from '../policy/index.js';

/** What the authority may know about the target actor (and the run) when it decides. */
export interface ActorView {
  exists: boolean;
  /** Lifecycle: only `active` actors take intents. */
  status: 'active' | 'done' | 'stopped' | 'failed' | 'missing';
  state: string;
  context: unknown;
  /** Whether the actor's current state can take `event` (XState `snapshot.can`). */
  can(event: { type: string }): boolean;
}

export interface RunView {
  exists: boolean;
  state: string;
  executing: boolean;
}

export interface DecideInput {
  intent: Intent;
  digest: string;
  event: { type: string } & Record<string, unknown>;
  actor: ActorView;
  run?: RunView | undefined;
  /** Kind-level policies (from the actor definition) checked before the runtime's. */
  kindPolicies?: readonly PolicyRule[];
  /** Set when the approvals of this pending intent reached their quorum: require_approval rules are satisfied. */
  approvedBy?: string;
  /**
   * Sign the decision (default). `false` leaves `sig` empty: only for a decision that stays
   * in this process and is vouched for by {@link LocalTrust}; the journal's signed
   * checkpoints attest it once it is committed.
   */
  sign?: boolean;
}

export interface AuthorityOptions {
  key: AuthorityKey;
  grants: GrantBook;
  clock: Clock;
  ids: IdGen;
  policies?: PolicyRule[];
  /**
   * The Cedar policy set in force, asked on every decision (it changes without a restart):
   * a forbid denies even with a grant, a permit lets an intent through without one, a
   * permit with approval annotations makes it pending. Undefined or returning undefined: no
   * Cedar call at all.
   */
  policySet?: () => CompiledPolicySet | undefined;
  /** How long a decision may wait before a host executes it. */
  decisionTtlMs?: number;
  /**
   * Group membership for `group:<name>` approver patterns. Without it such a pattern admits
   * nobody.
   */
  isMember?: IsMember;
}

/**
 * Decides intents. Checks, in order: the actor is live; deny rules; a Cedar forbid (it
 * denies even with a grant); a usable grant (or a Cedar permit, or an allow rule) — subject,
 * scope, expiry, revocation, uses, run binding, and for run-bound grants that the run is
 * EXECUTING; the actor's state can take the event; approval rules and approval-annotated
 * Cedar permits (docs/policies.md).
 * Every decision is signed and bound to the intent digest; only `granted` can execute.
 */
export class Authority {
  readonly key: AuthorityKey;
  readonly #grants: GrantBook;
  readonly #clock: Clock;
  readonly #ids: IdGen;
  readonly #policies: PolicyRule[];
  readonly #policySet: (() => CompiledPolicySet | undefined) | undefined;
  readonly #ttl: number;
  readonly #isMember: IsMember | undefined;

  constructor(opts: AuthorityOptions) {
    this.key = opts.key;
    this.#grants = opts.grants;
    this.#clock = opts.clock;
    this.#ids = opts.ids;
    this.#policies = opts.policies ?? [];
    this.#policySet = opts.policySet;
    this.#ttl = opts.decisionTtlMs ?? 30_000;
    this.#isMember = opts.isMember;
    // A rule's approval spec is checked once, here: a bad one is refused at start, not at the first intent.
    for (const r of this.#policies) if (r.effect === PolicyEffect.requireApproval) requirementOf(r);
  }

  /** Judges one approval or denial of a pending intent (see `judgeApproval`), with this authority's group membership. */
  judgeApproval(a: Omit<Parameters<typeof judgeApproval>[0], 'isMember'>): ApprovalJudgement {
    // Groups come from the runtime's option, else from the groups file of the policy set in force.
    const set = this.#policySet?.();
    const isMember = this.#isMember ?? (set ? (p: string, g: string) => set.isMember(p, g) : undefined);
    return judgeApproval({ ...a, isMember });
  }

  get grants(): GrantBook {
    return this.#grants;
  }

  decide(input: DecideInput): Decision {
    const { intent, actor } = input;
    const now = this.#clock.now();
    const reasons: Reason[] = [];
    // With a Cedar set in force, every decision names its version and the policies that determined it.
    let cedar: { set: CompiledPolicySet; verdict: PolicyVerdict } | undefined;
    const withPolicies = (extra: Partial<UnsignedDecision>): Partial<UnsignedDecision> =>
      cedar ? { policies: { version: cedar.set.version, ids: cedar.verdict.ids }, ...extra } : extra;
    const deny = (more: Reason[], extra: Partial<UnsignedDecision> = {}) =>
      this.#sign(input, 'denied', [...reasons, ...more], now, withPolicies(extra));

    if (actor.status !== 'active') {
      return deny([{ code: 'actor_not_active', message: `${intent.target} is ${actor.status}` }]);
    }
    const ctx = { intent, state: actor.state, context: actor.context };
    const rules = [...(input.kindPolicies ?? []), ...this.#policies];
    for (const rule of rules) {
      if (rule.effect === PolicyEffect.deny && ruleApplies(rule, ctx)) {
        return deny([{ code: 'policy_deny', message: rule.reason ?? `denied by policy ${rule.id}` }], { policyRule: rule.id });
      }
    }
    const set = this.#policySet?.();
    if (set) {
      cedar = {
        set,
        verdict: set.evaluate({
          principal: intent.proposer,
          target: intent.target,
          action: intent.action,
          params: paramsOf(input.event),
          state: actor.state,
          actorContext: actor.context,
          run:
            intent.runId !== undefined && input.run?.exists
              ? { id: intent.runId, state: input.run.state, executing: input.run.executing }
              : undefined,
          now,
        }),
      };
      const v = cedar.verdict;
      if (v.effect === 'forbid') {
        return deny(
          [{ code: 'policy_forbid', message: v.reason ?? `forbidden by policy ${v.ids.join(', ')} (policy set v${set.version})` }],
          {
            policyRule: v.ids[0]!,
          },
        );
      }
    }
    const permit = cedar?.verdict.effect === 'permit' ? cedar.verdict : undefined;

    let grantId: string | undefined;
    let allowRule: string | undefined;
    const found = this.#grants.find(intent, now);
    if ('grant' in found) {
      const g = found.grant;
      if (g.runId !== undefined) {
        if (!input.run?.exists) {
          return deny([{ code: 'run_not_found', message: `grant ${g.id} is bound to run ${g.runId}, which does not exist` }], {
            grantId: g.id,
          });
        }
        if (!input.run.executing) {
          return deny(
            [
              {
                code: 'run_not_executing',
                message: `grant ${g.id} is bound to run ${g.runId}, which is ${input.run.state}, not EXECUTING`,
              },
            ],
            { grantId: g.id },
          );
        }
      }
      grantId = g.id;
      reasons.push({
        code: 'grant',
        message: `${this.#grants.describe(g)} (${g.subject} → ${g.scope}${g.runId ? ` in run ${g.runId}` : ''}) allows it`,
      });
    } else {
      const allow = permit ? undefined : rules.find((r) => r.effect === PolicyEffect.allow && ruleApplies(r, ctx));
      if (permit) {
        allowRule = permit.ids[0]!;
        reasons.push({
          code: 'policy_permit',
          message: `permitted by policy ${permit.ids.join(', ')} (policy set v${cedar!.set.version})`,
        });
      } else if (!allow) {
        return deny([
          { code: 'no_grant', message: `${intent.proposer} holds no grant for ${intent.target}:${intent.action}` },
          ...found.misses,
        ]);
      } else {
        allowRule = allow.id;
        reasons.push({ code: 'policy_allow', message: allow.reason ?? `allowed by policy ${allow.id}` });
      }
    }

    if (!actor.can(input.event)) {
      return deny(
        [
          {
            code: 'wrong_state',
            message: `${intent.target} in state ${actor.state} cannot take ${intent.action} (no transition there, or its guard refuses)`,
          },
        ],
        { ...(grantId ? { grantId } : {}), ...(allowRule ? { policyRule: allowRule } : {}) },
      );
    }
    reasons.push({ code: 'state', message: `state ${actor.state} accepts ${intent.action}` });

    const gate =
      input.approvedBy === undefined ? rules.find((r) => r.effect === PolicyEffect.requireApproval && ruleApplies(r, ctx)) : undefined;
    const approval = input.approvedBy === undefined ? permit?.approval : undefined;
    if (gate || approval) {
      // Both gates may apply: the Cedar permit's requirement is the structured one.
      const why: Reason[] = [];
      if (approval)
        why.push({
          code: 'approval_required',
          message: `${approval.reason ?? `policy ${approval.policy} requires approval`} (${approval.quorum} of ${approval.approvers.join(', ')})`,
        });
      if (gate) why.push({ code: 'approval_required', message: gate.reason ?? `policy ${gate.id} requires a human approval` });
      return this.#sign(
        input,
        'pending',
        [...reasons, ...why],
        now,
        withPolicies({
          policyRule: approval?.policy ?? gate!.id,
          requirement: approval ?? requirementOf(gate!),
          ...(grantId ? { grantId } : {}),
        }),
      );
    }
    if (input.approvedBy !== undefined) reasons.push({ code: 'approved', message: `approved by ${input.approvedBy}` });

    // A grant with maxUses is charged by the host, in the intent's own turn (GrantBook.spend).
    return this.#sign(
      input,
      'granted',
      reasons,
      now,
      withPolicies({
        ...(grantId ? { grantId } : {}),
        ...(allowRule ? { policyRule: allowRule } : {}),
        ...(input.approvedBy !== undefined ? { approvedBy: input.approvedBy } : {}),
      }),
    );
  }

  #sign(input: DecideInput, verdict: Verdict, reasons: Reason[], now: number, extra: Partial<UnsignedDecision>): Decision {
    const d: UnsignedDecision = {
      v: 1,
      id: this.#ids.next('d'),
      intentId: input.intent.id,
      intentDigest: input.digest,
      verdict,
      reasons,
      actorState: input.actor.state,
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + this.#ttl).toISOString(),
      authority: this.key.keyId,
      ...extra,
    };
    return input.sign === false ? { ...d, sig: '' } : this.key.sign(d);
  }
}

/** An event's params: the validated event without its `type`. */
function paramsOf(event: { type: string } & Record<string, unknown>): Record<string, unknown> {
  const { type: _type, ...params } = event;
  return params;
}

/**
 * What a host checks before it executes anything: the signature of a known authority, the
 * binding to this exact intent (id and digest), and that the decision has not expired.
 * @throws DecisionVerificationError naming the failed check.
 */
export function verifyDecision(
  decision: Decision,
  intent: Intent,
  digest: string,
  keys: ReadonlyMap<string, AuthorityKey>,
  now: number,
  opts: { skipSignature?: boolean } = {},
): void {
  const key = keys.get(decision.authority);
  if (!key)
    throw new DecisionVerificationError(
      'unknown_authority',
      `decision ${decision.id} is signed by unknown authority ${decision.authority}`,
    );
  if (opts.skipSignature !== true && !key.verify(decision)) {
    throw new DecisionVerificationError('bad_signature', `decision ${decision.id} has an invalid signature`);
  }
  if (decision.intentId !== intent.id) {
    throw new DecisionVerificationError('intent_mismatch', `decision ${decision.id} is for intent ${decision.intentId}, not ${intent.id}`);
  }
  if (decision.intentDigest !== digest) {
    throw new DecisionVerificationError('digest_mismatch', `decision ${decision.id} was made for different intent content`);
  }
  if (Date.parse(decision.expiresAt) <= now) {
    throw new DecisionVerificationError('expired', `decision ${decision.id} expired at ${decision.expiresAt}`);
  }
}
