import { z } from 'zod';
import { ActorAddressSchema } from './address.js';
import { canonicalJson, sha256Hex } from './canonical.js';

export const PROTOCOL_VERSION = 1 as const;

/** Ids that travel as NATS subject tokens and message ids: no dots, spaces or wildcards. */
export const IdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$/, 'expected 1-128 chars of A-Za-z0-9_:- starting with a letter or digit');

/** A principal: who proposes (`agent:planner`, `svc:billing`, `human:alice`). */
export const PrincipalSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]*:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'expected "type:name", e.g. "agent:planner"');

/** Event names an actor accepts; the same spelling is the XState event `type`. */
export const ActionSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'expected an action name of A-Za-z0-9_ (max 64)');

export const ParamsSchema = z.record(z.string(), z.unknown());

/**
 * An intent: a proposal that an actor take an action. Proposers produce these; nothing
 * becomes real until the authority grants it and a host executes it.
 */
export const IntentSchema = z.strictObject({
  v: z.literal(PROTOCOL_VERSION),
  /** Idempotency key: the same id is executed at most once and always gets the same outcome. */
  id: IdSchema,
  proposer: PrincipalSchema,
  target: ActorAddressSchema,
  action: ActionSchema,
  params: ParamsSchema.default({}),
  /** The ICE run this intent belongs to; run-bound grants match only intents of their run. */
  runId: IdSchema.optional(),
  /** The intent or fact that led to this one (for traces across agents). */
  causationId: z.string().max(256).optional(),
  correlationId: z.string().max(256).optional(),
  /** The proposer's stated rationale (e.g. the model's explanation). Recorded, never trusted. */
  rationale: z.string().max(4000).optional(),
});
export type Intent = z.infer<typeof IntentSchema>;
/** What callers write: `v` and `params` may be omitted. */
export type IntentInput = Omit<z.input<typeof IntentSchema>, 'v'> & { v?: 1 };

/** sha256 over the canonical JSON of the whole intent; decisions are bound to it. */
export function intentDigest(intent: Intent): string {
  return sha256Hex(canonicalJson(intent));
}
