import { z } from 'zod';
import { PROTOCOL_VERSION } from './intent.js';
import { ReasonSchema } from './decision.js';

export const IssueSchema = z.strictObject({
  path: z.string(),
  code: z.string(),
  message: z.string(),
  expected: z.string().optional(),
});

const base = { v: z.literal(PROTOCOL_VERSION), intentId: z.string().optional() };

/** What a proposer gets back. Keyed on `status`. */
export const OutcomeSchema = z.discriminatedUnion('status', [
  z.strictObject({
    ...base,
    status: z.literal('executed'),
    intentId: z.string(),
    actor: z.string(),
    from: z.string(),
    to: z.string(),
    decisionId: z.string(),
    grantId: z.string().optional(),
    /** Seq of the transition fact. */
    seq: z.int(),
  }),
  z.strictObject({
    ...base,
    status: z.literal('denied'),
    intentId: z.string(),
    actor: z.string(),
    decisionId: z.string(),
    reasons: z.array(ReasonSchema),
    seq: z.int(),
  }),
  z.strictObject({
    ...base,
    status: z.literal('pending'),
    intentId: z.string(),
    actor: z.string(),
    decisionId: z.string(),
    reasons: z.array(ReasonSchema),
    seq: z.int(),
  }),
  z.strictObject({
    ...base,
    status: z.literal('rejected'),
    issues: z.array(IssueSchema),
    /** The chain holding the `intent.rejected` fact: the receiving node's runtime chain. */
    chain: z.string().optional(),
    seq: z.int().optional(),
  }),
  z.strictObject({
    ...base,
    status: z.literal('failed'),
    intentId: z.string(),
    actor: z.string(),
    error: z.strictObject({ code: z.string(), message: z.string() }),
    seq: z.int().optional(),
  }),
]);
export type Outcome = z.infer<typeof OutcomeSchema>;
export type OutcomeStatus = Outcome['status'];
export type Issue = z.infer<typeof IssueSchema>;
