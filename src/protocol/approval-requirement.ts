import { z } from 'zod';

/**
 * What a pending intent needs before it runs: `quorum` distinct approvers, each allowed by one
 * of the `approvers` principal patterns (`human:*`, `human:alice`, `group:<name>`), within
 * `ttlMs` of the pending decision. `policy` names the rule (or policy) that asked for it.
 * Carried, signed, in the pending decision (`Decision.requirement`) and in the pending record.
 */
export const ApprovalRequirementSchema = z.strictObject({
  policy: z.string().min(1).max(200),
  quorum: z.int().min(1).max(100),
  approvers: z.array(z.string().min(1).max(200)).min(1).max(100),
  ttlMs: z.int().positive(),
  reason: z.string().max(4000).optional(),
});
export type ApprovalRequirement = z.infer<typeof ApprovalRequirementSchema>;

/** One approval counted towards a pending intent's quorum. `seq`: its `approval` fact. */
export const ApprovalEntrySchema = z.strictObject({
  by: z.string(),
  at: z.iso.datetime(),
  note: z.string().optional(),
  seq: z.int().positive(),
});
export type ApprovalEntry = z.infer<typeof ApprovalEntrySchema>;

/**
 * Why an approval (or a denial) of a pending intent was refused. Each is recorded as an
 * `approval.refused` fact and thrown as an `ApprovalRefusedError` with its own code.
 */
export const ApprovalRefusal = {
  /** The proposer of the intent approving it. */
  self: 'self_approval',
  /** The same approver a second time: counted once. */
  repeat: 'repeat',
  /** Not allowed by the requirement's approver patterns. */
  notAllowed: 'not_allowed',
  /** After the requirement's deadline: the intent is denied `approval_expired`. */
  expired: 'expired',
  /** No pending intent with this id, and no outcome either. */
  unknown: 'unknown_intent',
  /** The intent was pending once and is settled now (executed, denied, …). */
  notPending: 'not_pending',
} as const;
export type ApprovalRefusal = (typeof ApprovalRefusal)[keyof typeof ApprovalRefusal];
