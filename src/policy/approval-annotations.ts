import type { IssueDetail } from '../errors.js';

/**
 * An approval requirement: `quorum` distinct approvers matching `approvers` (principal
 * patterns like `human:*`, or `group:<name>`) within `ttlMs`. The shape N-of-M approvals
 * work with.
 */
export interface ApprovalRequirement {
  policy: string;
  quorum: number;
  approvers: string[];
  ttlMs: number;
  reason?: string;
}

/** The annotations of a permit that make it an approval gate (docs/policies.md). */
export const APPROVAL_ANNOTATIONS = ['approval', 'approvers', 'approval_ttl'] as const;
export const DEFAULT_APPROVERS = ['human:*'];
export const DEFAULT_APPROVAL_TTL_MS = 24 * 3_600_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^[a-z*][a-z0-9*-]*:[A-Za-z0-9*][A-Za-z0-9*._@-]{0,127}$/;

/**
 * `@approval("2") @approvers("group:ops, human:*") @approval_ttl("1h") @reason("…")` on a
 * permit → its requirement; any one of the first three makes the permit a gate (defaults:
 * quorum 1, approvers `human:*`, ttl 24h). On a forbid they are refused.
 */
export function approvalOf(
  policy: string,
  effect: 'permit' | 'forbid',
  ann: Record<string, string>,
  groups: ReadonlyMap<string, unknown>,
): { approval?: ApprovalRequirement } | { issue: Omit<IssueDetail, 'path'> } {
  if (!APPROVAL_ANNOTATIONS.some((a) => ann[a] !== undefined)) return {};
  if (effect === 'forbid')
    return {
      issue: { code: 'policy_annotation', message: `${policy}: @approval, @approvers and @approval_ttl belong on a permit, not a forbid` },
    };
  const q = ann.approval ?? '1';
  if (!/^[1-9]\d{0,2}$/.test(q))
    return {
      issue: {
        code: 'policy_annotation',
        message: `${policy}: @approval(${JSON.stringify(q)})`,
        expected: 'a quorum from 1 to 999, e.g. @approval("2")',
      },
    };
  const approvers =
    ann.approvers !== undefined
      ? ann.approvers
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
      : DEFAULT_APPROVERS;
  if (approvers.length === 0)
    return {
      issue: { code: 'policy_annotation', message: `${policy}: @approvers is empty`, expected: 'e.g. @approvers("group:ops, human:*")' },
    };
  for (const a of approvers) {
    if (a.startsWith('group:')) {
      if (!groups.has(a.slice(6)))
        return {
          issue: { code: 'policy_annotation', message: `${policy}: @approvers names ${a}, which the groups file does not declare` },
        };
    } else if (!PATTERN.test(a))
      return {
        issue: {
          code: 'policy_annotation',
          message: `${policy}: approver ${JSON.stringify(a)}`,
          expected: 'a principal pattern "type:name" (wildcards *) or group:<name>',
        },
      };
  }
  let ttlMs = DEFAULT_APPROVAL_TTL_MS;
  if (ann.approval_ttl !== undefined) {
    const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(ann.approval_ttl.trim());
    if (!m || Number(m[1]) === 0)
      return {
        issue: {
          code: 'policy_annotation',
          message: `${policy}: @approval_ttl(${JSON.stringify(ann.approval_ttl)})`,
          expected: 'a duration with a unit, e.g. 30m, 1h, 7d',
        },
      };
    ttlMs = Number(m[1]) * UNITS[m[2]!]!;
  }
  return { approval: { policy, quorum: Number(q), approvers, ttlMs, ...(ann.reason !== undefined ? { reason: ann.reason } : {}) } };
}
