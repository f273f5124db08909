import { ConfigError } from '../errors.js';
import { ApprovalRefusal, ApprovalRequirementSchema, type ApprovalEntry, type ApprovalRequirement } from '../protocol/index.js';
import { principalMatches } from './scope.js';

export type { ApprovalRequirement, ApprovalEntry } from '../protocol/index.js';
export { ApprovalRefusal, ApprovalRequirementSchema } from '../protocol/index.js';

/**
 * Whether `principal` belongs to group `group` (for `group:<name>` approver patterns).
 * Without one, a `group:` pattern matches nobody.
 */
export type IsMember = (principal: string, group: string) => boolean;

/** How long a pending intent waits for its approvals when its rule does not say: 7 days. */
export const DEFAULT_APPROVAL_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * What a `require_approval` rule asks for when it says nothing more: one approver, anyone
 * but the proposer (as before quorums: any principal could approve), within 7 days.
 */
export const DEFAULT_APPROVAL: Omit<ApprovalRequirement, 'policy'> = { quorum: 1, approvers: ['*'], ttlMs: DEFAULT_APPROVAL_TTL_MS };

/** What a code `require_approval` rule may declare about its approvals (each defaults as in DEFAULT_APPROVAL). */
export interface ApprovalSpec {
  /** How many distinct approvers. Default 1. */
  quorum?: number;
  /** Who may approve: principal patterns (`human:*`, `human:alice`) or `group:<name>`. Default `*`. */
  approvers?: string[];
  /** How long the pending intent may wait, in ms. Default 7 days. */
  ttlMs?: number;
}

/**
 * The requirement of a `require_approval` rule: its `approval` spec over the defaults.
 * @throws ConfigError naming the rule and the field when the spec is not valid.
 * @example
 * requirementOf({ id: 'prod', approval: { quorum: 2, approvers: ['group:sre'], ttlMs: 3_600_000 } })
 * // → { policy: 'prod', quorum: 2, approvers: ['group:sre'], ttlMs: 3600000 }
 */
export function requirementOf(rule: { id: string; reason?: string; approval?: ApprovalSpec }): ApprovalRequirement {
  const req = {
    policy: rule.id,
    quorum: rule.approval?.quorum ?? DEFAULT_APPROVAL.quorum,
    approvers: rule.approval?.approvers ?? DEFAULT_APPROVAL.approvers,
    ttlMs: rule.approval?.ttlMs ?? DEFAULT_APPROVAL.ttlMs,
    ...(rule.reason !== undefined ? { reason: rule.reason } : {}),
  };
  const r = ApprovalRequirementSchema.safeParse(req);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const field = i.path.join('.');
    throw new ConfigError(
      `policy rule ${rule.id}: approval.${field === 'policy' ? 'id' : field} ${i.message} ` +
        '(expected quorum: integer 1-100, approvers: 1-100 principal patterns, ttlMs: positive integer)',
    );
  }
  return r.data;
}

/** Whether one approver pattern admits `principal`: a principal pattern, or `group:<name>` through `isMember`. */
export function approverMatches(pattern: string, principal: string, isMember?: IsMember): boolean {
  if (pattern.startsWith('group:')) {
    if (!isMember) return false;
    try {
      return isMember(principal, pattern.slice('group:'.length)) === true;
    } catch {
      return false; // a membership source that fails admits nobody
    }
  }
  return principalMatches(pattern, principal);
}

/** What an approval attempt comes to: counted, or refused with why. */
export type ApprovalJudgement = { ok: true } | { ok: false; refusal: ApprovalRefusal; message: string };

/**
 * Judges one approval (or denial) of a pending intent, in this order: expired; the proposer
 * itself (`self_approval`); not admitted by the approver patterns (`not_allowed`); an approver
 * counted before (`repeat`, approvals only).
 */
export function judgeApproval(a: {
  requirement: ApprovalRequirement;
  approvals: readonly ApprovalEntry[];
  /** The deadline, ms since the epoch. */
  expiresAt: number;
  proposer: string;
  by: string;
  now: number;
  kind: 'approve' | 'deny';
  isMember?: IsMember | undefined;
}): ApprovalJudgement {
  const { requirement: req, by } = a;
  if (a.now >= a.expiresAt)
    return {
      ok: false,
      refusal: ApprovalRefusal.expired,
      message: `the approval window closed at ${new Date(a.expiresAt).toISOString()}`,
    };
  if (by === a.proposer && a.kind === 'approve')
    return { ok: false, refusal: ApprovalRefusal.self, message: `${by} proposed this intent and cannot approve it` };
  if (!req.approvers.some((p) => approverMatches(p, by, a.isMember)))
    return {
      ok: false,
      refusal: ApprovalRefusal.notAllowed,
      message: `${by} is not one of the approvers of policy ${req.policy} (${req.approvers.join(', ')})`,
    };
  if (a.kind === 'approve' && a.approvals.some((x) => x.by === by))
    return { ok: false, refusal: ApprovalRefusal.repeat, message: `${by} approved this intent already; an approver counts once` };
  return { ok: true };
}
