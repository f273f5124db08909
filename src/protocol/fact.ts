import { z } from 'zod';
import { PROTOCOL_VERSION } from './intent.js';

export const FactType = {
  intentProposed: 'intent.proposed',
  intentRejected: 'intent.rejected',
  intentFailed: 'intent.failed',
  /** An actor's machine proposed an intent (outbox): committed with the transition that emitted it, sent after. */
  intentEmitted: 'intent.emitted',
  /** A transition started a durable effect (committed with it; run after the commit). */
  effectStarted: 'effect.started',
  /** The actor left the state that started an effect: cancelled, its result never applied. */
  effectCancelled: 'effect.cancelled',
  decision: 'decision',
  decisionRefused: 'decision.refused',
  transition: 'transition',
  actorStarted: 'actor.started',
  actorStopped: 'actor.stopped',
  actorFailed: 'actor.failed',
  actorRestored: 'actor.restored',
  /** A failed actor was restarted: by its supervision policy (origin runtime) or an operator. */
  actorRestarted: 'actor.restarted',
  /** A restore ran the definition's migrations over a stored snapshot of a lower version: `{from, to, machine}`. */
  actorMigrated: 'actor.migrated',
  /**
   * A child XState cannot restore (an in-memory effect in flight when the snapshot was taken,
   * or logic the machine does not name) was removed on restore: `{child, src, reason}`.
   */
  childLost: 'child.lost',
  grantIssued: 'grant.issued',
  grantRevoked: 'grant.revoked',
  /** A holder delegated a narrower grant from one it holds. */
  grantDelegated: 'grant.delegated',
  /** An intent spent a use of a grant with maxUses (in the intent's own turn, on its actor's chain). */
  grantUsed: 'grant.used',
  approval: 'approval',
  /** An approval or denial of a pending intent that was refused (self, repeat, not allowed, …). */
  approvalRefused: 'approval.refused',
  /** A pending intent whose approval deadline passed: denied `approval_expired`. */
  approvalExpired: 'approval.expired',
  /** A new version of the Cedar policy set was applied (version, hash, who). */
  policyApplied: 'policy.applied',
  /** A node served a journal its start-up check found broken, because its operator said to. */
  journalBroken: 'journal.broken',
} as const;
export type FactType = (typeof FactType)[keyof typeof FactType];

export const Origin = { runtime: 'runtime', authority: 'authority', operator: 'operator', proposer: 'proposer' } as const;
export type Origin = (typeof Origin)[keyof typeof Origin];

/**
 * The version of the facts written now. `2`: `hash = sha256(prev + JCS(body))` (RFC 8785).
 * Facts of version `1` (written before) hashed `JSON.stringify(body)` in their own key order;
 * they are still read and verified.
 */
export const FACT_VERSION = 2 as const;

/**
 * One line of the journal. `hash = sha256(prev + JCS(body))` (RFC 8785 canonical JSON) where
 * body is every field but `prev` and `hash`; `prev` is the hash of fact `seq - 1` ("" before
 * the first). See `chain.ts`.
 */
export const FactSchema = z.strictObject({
  v: z.literal([PROTOCOL_VERSION, FACT_VERSION]),
  seq: z.int().positive(),
  at: z.iso.datetime(),
  type: z.enum(Object.values(FactType) as [FactType, ...FactType[]]),
  origin: z.enum(['runtime', 'authority', 'operator', 'proposer']),
  actor: z.string().optional(),
  intentId: z.string().optional(),
  /** Seqs of the facts that caused this one (transition → decision → intent). */
  causes: z.array(z.int().positive()),
  data: z.record(z.string(), z.unknown()),
  prev: z.string(),
  hash: z.string(),
});
export type Fact = z.infer<typeof FactSchema>;
export type FactBody = Omit<Fact, 'prev' | 'hash'>;
export type FactDraft = Omit<FactBody, 'v' | 'seq' | 'at' | 'causes'> & { causes?: number[] };
