import { describe, expect, it } from 'vitest';
import {
  Authority,
  AuthorityKey,
  DEFAULT_APPROVAL_TTL_MS,
  GrantBook,
  approverMatches,
  judgeApproval,
  requirementOf,
} from '../../src/authority/index.js';
import { ApprovalRequirementSchema, DecisionSchema, type ApprovalRequirement } from '../../src/protocol/index.js';
import { ConfigError, ManualClock, sequentialIds } from '../../src/index.js';

const req: ApprovalRequirement = { policy: 'p', quorum: 2, approvers: ['human:*', 'group:sre'], ttlMs: 60_000 };
const base = { requirement: req, approvals: [], expiresAt: 1_000_000, proposer: 'agent:bot', now: 0, kind: 'approve' as const };

describe('approval requirement', () => {
  it('a rule without a spec asks for one approver, anyone, within 7 days; a spec overrides each field', () => {
    expect(requirementOf({ id: 'r' })).toEqual({ policy: 'r', quorum: 1, approvers: ['*'], ttlMs: DEFAULT_APPROVAL_TTL_MS });
    expect(requirementOf({ id: 'r', reason: 'why', approval: { quorum: 3, approvers: ['human:a'], ttlMs: 5 } })).toEqual({
      policy: 'r',
      quorum: 3,
      approvers: ['human:a'],
      ttlMs: 5,
      reason: 'why',
    });
  });

  it('a bad spec is a ConfigError naming the rule and the field; the authority refuses it at construction', () => {
    expect(() => requirementOf({ id: 'r', approval: { quorum: 0 } })).toThrow(/policy rule r: approval.quorum/);
    expect(() => requirementOf({ id: 'r', approval: { approvers: [] } })).toThrow(ConfigError);
    expect(() => requirementOf({ id: 'r', approval: { ttlMs: -1 } })).toThrow(/approval.ttlMs/);
    const clock = new ManualClock();
    const ids = sequentialIds();
    expect(
      () =>
        new Authority({
          key: AuthorityKey.generate(),
          grants: new GrantBook([], () => Promise.resolve(), clock, ids),
          clock,
          ids,
          policies: [{ id: 'bad', effect: 'require_approval', approval: { quorum: 1.5 } }],
        }),
    ).toThrow(/policy rule bad/);
  });

  it('survives a JSON round trip and is part of the decision schema', () => {
    const r = requirementOf({ id: 'r', reason: 'x', approval: { quorum: 2, approvers: ['group:sre'] } });
    expect(ApprovalRequirementSchema.parse(JSON.parse(JSON.stringify(r)))).toEqual(r);
    expect(DecisionSchema.shape.requirement.safeParse(r).success).toBe(true);
  });

  it('approver patterns: principals with *, groups only through isMember (none: nobody; a throwing one: nobody)', () => {
    expect(approverMatches('human:*', 'human:alice')).toBe(true);
    expect(approverMatches('human:*', 'agent:alice')).toBe(false);
    expect(approverMatches('human:alice', 'human:alicia')).toBe(false);
    expect(approverMatches('group:sre', 'human:alice')).toBe(false);
    expect(approverMatches('group:sre', 'human:alice', (p, g) => g === 'sre' && p === 'human:alice')).toBe(true);
    expect(
      approverMatches('group:sre', 'human:alice', () => {
        throw new Error('directory down');
      }),
    ).toBe(false);
  });

  it('judges in order: expired, self, not allowed, repeat; a denial may come from the proposer and is not a repeat', () => {
    expect(judgeApproval({ ...base, by: 'human:a' })).toEqual({ ok: true });
    expect(judgeApproval({ ...base, by: 'human:a', now: 1_000_000 })).toMatchObject({ ok: false, refusal: 'expired' });
    expect(judgeApproval({ ...base, by: 'agent:bot' })).toMatchObject({ ok: false, refusal: 'self_approval' });
    expect(judgeApproval({ ...base, by: 'agent:x' })).toMatchObject({ ok: false, refusal: 'not_allowed' });
    const approvals = [{ by: 'human:a', at: '2026-01-01T00:00:00.000Z', seq: 3 }];
    expect(judgeApproval({ ...base, approvals, by: 'human:a' })).toMatchObject({ ok: false, refusal: 'repeat' });
    expect(judgeApproval({ ...base, approvals, by: 'human:a', kind: 'deny' })).toEqual({ ok: true });
    expect(judgeApproval({ ...base, requirement: { ...req, approvers: ['*'] }, by: 'agent:bot', kind: 'deny' })).toEqual({ ok: true });
    expect(judgeApproval({ ...base, by: 'human:z', isMember: () => true, requirement: { ...req, approvers: ['group:x'] } })).toEqual({
      ok: true,
    });
  });
});
