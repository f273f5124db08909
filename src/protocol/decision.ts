import { z } from 'zod';
import { IdSchema, PROTOCOL_VERSION } from './intent.js';
import { ApprovalRequirementSchema } from './approval-requirement.js';

export const Verdict = { granted: 'granted', denied: 'denied', pending: 'pending' } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export const ReasonSchema = z.strictObject({
  code: z.string(),
  message: z.string(),
  path: z.string().optional(),
});
export type Reason = z.infer<typeof ReasonSchema>;

/**
 * The authority's signed verdict on one intent. `sig` is ed25519 over the canonical JSON of
 * every other field, so changing the verdict, the digest, the expiry or a reason breaks it.
 */
export const DecisionSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id: IdSchema,
  intentId: IdSchema,
  intentDigest: z.string().regex(/^[0-9a-f]{64}$/),
  verdict: z.enum(['granted', 'denied', 'pending']),
  reasons: z.array(ReasonSchema),
  grantId: IdSchema.optional(),
  policyRule: z.string().optional(),
  /** The actor's state the decision was taken against. */
  actorState: z.string().optional(),
  /** Who approved it, comma-separated in the order they approved (a quorum's final decision). */
  approvedBy: z.string().optional(),
  /** A `pending` decision: what it waits for (quorum, approvers, deadline). */
  requirement: ApprovalRequirementSchema.optional(),
  /** The Cedar policy set in force (when one is) and the ids of the policies that determined this decision. */
  policies: z.strictObject({ version: z.int().nonnegative(), ids: z.array(z.string()) }).optional(),
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** Key id of the signing authority (first 16 hex chars of sha256 of its public key). */
  authority: z.string(),
  sig: z.string(),
});
export type Decision = z.infer<typeof DecisionSchema>;
export type UnsignedDecision = Omit<Decision, 'sig'>;
