import { z } from 'zod';
import { IdSchema, PROTOCOL_VERSION, PrincipalSchema } from './intent.js';

/**
 * Scope pattern over `kind/id:ACTION`. Each of the three parts is matched on its own;
 * `*` in a part matches any run of characters within that part; `*` alone as the whole
 * pattern means every action of every actor. Examples: `deployment/*:DEPLOY`,
 * `deployment/checkout:*`, `run/r-*:*`.
 */
export const ScopeSchema = z
  .string()
  .regex(/^(\*|[a-z0-9*-]+\/[A-Za-z0-9_*-]+:[A-Za-z0-9_*]+)$/, 'expected a scope "kind/id:ACTION" (wildcards: *), or "*"');

/** Who a grant is for: an exact principal or a pattern like `agent:*`. */
export const SubjectPatternSchema = z
  .string()
  .regex(/^([a-z*][a-z0-9*-]*:[A-Za-z0-9*][A-Za-z0-9._@*-]{0,127}|\*)$/, 'expected "type:name" (wildcards: *)');

export const GrantSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  id: IdSchema,
  subject: SubjectPatternSchema,
  scope: ScopeSchema,
  runId: IdSchema.optional(),
  issuedAt: z.iso.datetime(),
  issuedBy: z.string().min(1).max(200),
  expiresAt: z.iso.datetime().optional(),
  maxUses: z.int().positive().optional(),
  uses: z.int().nonnegative(),
  /**
   * Intents that spent a use (grants with maxUses only, newest last, at most 100): a retry
   * of one of them is not charged again.
   */
  usedBy: z.array(IdSchema).max(100).optional(),
  revokedAt: z.iso.datetime().optional(),
  revokedBy: z.string().max(200).optional(),
  /**
   * Set on a grant revoked because an ancestor was: the id of the grant whose revocation
   * cascaded to it (the one the operator or holder revoked).
   */
  revokedWith: IdSchema.optional(),
  note: z.string().max(1000).optional(),
  /** A delegated grant: the grant it was delegated from (its holder narrowed it for `subject`). */
  parentId: IdSchema.optional(),
  /** A delegated grant: the principal who delegated it, a holder of the parent grant. */
  delegatedBy: PrincipalSchema.optional(),
  /**
   * Uses of this grant (one with `maxUses`) handed to grants delegated from it: they are no
   * longer this grant's own. Uses left = `maxUses - uses - delegatedUses`.
   */
  delegatedUses: z.int().positive().optional(),
  /**
   * The grants that took uses from this one (newest last, at most 100): a delegation of the
   * same child id is not charged twice.
   */
  delegatedTo: z.array(IdSchema).max(100).optional(),
});
export type Grant = z.infer<typeof GrantSchema>;

/**
 * The longest `ttlMs`: 3650 days, as the CLI's `--ttl`. A longer one named an instant past
 * what a Date holds (year 275760: `toISOString` threw a RangeError) or a six-digit year that
 * no ISO 8601 reader of the grant takes.
 */
export const MAX_GRANT_TTL_MS = 3650 * 86_400_000;

/** What an operator supplies to issue a grant. */
export const GrantRequestSchema = z.strictObject({
  id: IdSchema.optional(),
  subject: SubjectPatternSchema,
  scope: ScopeSchema,
  runId: IdSchema.optional(),
  /** Absolute expiry, or `ttlMs` from now; neither means no expiry. */
  expiresAt: z.iso.datetime().optional(),
  ttlMs: z.int().positive().max(MAX_GRANT_TTL_MS).optional(),
  maxUses: z.int().positive().optional(),
  by: z.string().min(1).max(200).default('operator'),
  note: z.string().max(1000).optional(),
});
export type GrantRequest = z.input<typeof GrantRequestSchema>;

/**
 * What a holder supplies to delegate a narrower grant from one it holds (`parentId`) to
 * another principal. Each term left out is the parent's: its scope, its expiry, its run
 * binding; `maxUses` has no default when the parent has one (give how many of its uses to
 * hand over). Every term must be within the parent's; see docs/protocol.md, "Delegation".
 */
export const GrantDelegationSchema = z.strictObject({
  parentId: IdSchema,
  /** Id of the new grant (default: a fresh one). */
  id: IdSchema.optional(),
  /** Who receives it: one principal (no wildcards). */
  subject: PrincipalSchema,
  scope: ScopeSchema.optional(),
  runId: IdSchema.optional(),
  expiresAt: z.iso.datetime().optional(),
  ttlMs: z.int().positive().max(MAX_GRANT_TTL_MS).optional(),
  maxUses: z.int().positive().optional(),
  /** Who delegates: must be a holder of the parent (match its subject). */
  by: PrincipalSchema,
  note: z.string().max(1000).optional(),
});
export type GrantDelegation = z.input<typeof GrantDelegationSchema>;
