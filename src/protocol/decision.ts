import { z } from 'zod';
import { IdSchema, PROTOCOL_VERSION } from './intent.js';

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
  approvedBy: z.string().optional(),
  /** The Cedar policy set in force (when one is) and the ids of the policies that determined this decision. */
  policies: z.strictObject({ version: z.int().nonnegative(), ids: z.array(z.string()) }).optional(),
  /** On a `pending` decision from a permit with approval annotations: what approving it takes. */
  approval: z
    .strictObject({
      policy: z.string(),
      quorum: z.int().positive(),
      approvers: z.array(z.string()).min(1),
      ttlMs: z.int().positive(),
      reason: z.string().optional(),
    })
    .optional(),
  issuedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** Key id of the signing authority (first 16 hex chars of sha256 of its public key). */
  authority: z.string(),
  sig: z.string(),
});
export type Decision = z.infer<typeof DecisionSchema>;
export type UnsignedDecision = Omit<Decision, 'sig'>;
