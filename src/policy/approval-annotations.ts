import type { IssueDetail } from '../errors.js';
import { ApprovalRequirementSchema, type ApprovalRequirement } from '../protocol/index.js';

export type { ApprovalRequirement };

/** The annotations of a permit that make it an approval gate (docs/policies.md). */
export const APPROVAL_ANNOTATIONS = ['approval', 'approvers', 'approval_ttl'] as const;
export const DEFAULT_APPROVERS = ['human:*'];
/** An annotated permit's approval window when `@approval_ttl` is left out (code rules: 7 days). */
export const DEFAULT_ANNOTATION_TTL_MS = 24 * 3_600_000;

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
  if (!/^[1-9]\d{0,2}$/.test(q) || Number(q) > 100)
    return {
      issue: {
        code: 'policy_annotation',
        message: `${policy}: @approval(${JSON.stringify(q)})`,
        expected: 'a quorum from 1 to 100, e.g. @approval("2")',
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
  let ttlMs = DEFAULT_ANNOTATION_TTL_MS;
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
  // The requirement is signed into pending decisions: it must fit their published schema.
  const r = ApprovalRequirementSchema.safeParse({
    policy,
    quorum: Number(q),
    approvers,
    ttlMs,
    ...(ann.reason !== undefined ? { reason: ann.reason } : {}),
  });
  if (!r.success) {
    const i = r.error.issues[0]!;
    const field = { policy: '@id', quorum: '@approval', approvers: '@approvers', ttlMs: '@approval_ttl', reason: '@reason' }[
      String(i.path[0])
    ];
    return {
      issue: {
        code: 'policy_annotation',
        message: `${policy}: ${field ?? String(i.path[0])} ${i.message}`,
        expected: 'quorum 1-100, 1-100 approvers, an approval window that fits a safe integer of ms, @id and @reason within limits',
      },
    };
  }
  return { approval: r.data };
}
