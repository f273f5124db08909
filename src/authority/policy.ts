import type { Intent } from '../protocol/index.js';
import type { ApprovalSpec } from './approval-requirement.js';
import { principalMatches, scopeMatches } from './scope.js';

export const PolicyEffect = { allow: 'allow', deny: 'deny', requireApproval: 'require_approval' } as const;
export type PolicyEffect = (typeof PolicyEffect)[keyof typeof PolicyEffect];

/** What a policy rule's `when` sees. Read-only. */
export interface PolicyContext {
  intent: Intent;
  /** The target actor's current state (`a.b` for nested). */
  state: string;
  context: unknown;
}

/**
 * One rule. `deny` beats everything; `allow` stands in for a grant (use sparingly);
 * `require_approval` turns an otherwise granted intent into a pending one.
 * @example
 * { id: 'prod-needs-human', effect: 'require_approval', scope: 'deployment/*:DEPLOY',
 *   when: ({ intent }) => intent.params.environment === 'production',
 *   reason: 'production deploys need a human' }
 * // two SREs within an hour, never the proposer:
 * { id: 'prod-two-sre', effect: 'require_approval', scope: 'deployment/*:DEPLOY',
 *   approval: { quorum: 2, approvers: ['group:sre', 'human:cto'], ttlMs: 3_600_000 } }
 */
export interface PolicyRule {
  id: string;
  effect: PolicyEffect;
  /** Principal pattern (`agent:*`); omitted = any proposer. */
  proposer?: string;
  /** Scope pattern over `kind/id:ACTION`; omitted = any. */
  scope?: string;
  when?: (ctx: PolicyContext) => boolean;
  reason?: string;
  /**
   * `require_approval` only: how many distinct approvers, who may approve, how long the
   * intent may wait (default: one approver, anyone but the proposer, 7 days).
   */
  approval?: ApprovalSpec;
}

export function ruleApplies(rule: PolicyRule, ctx: PolicyContext): boolean {
  if (rule.proposer !== undefined && !principalMatches(rule.proposer, ctx.intent.proposer)) return false;
  if (rule.scope !== undefined && !scopeMatches(rule.scope, ctx.intent.target, ctx.intent.action)) return false;
  if (rule.when !== undefined) {
    try {
      return rule.when(ctx) === true;
    } catch {
      // A rule that throws applies if it denies or gates (fail closed), not if it allows.
      return rule.effect !== PolicyEffect.allow;
    }
  }
  return true;
}
