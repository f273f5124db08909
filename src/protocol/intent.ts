import { z } from 'zod';
import { ActorAddressSchema, isAddress } from './address.js';
import { canonicalJson, sha256Hex } from './canonical.js';

export const PROTOCOL_VERSION = 1 as const;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$/;
const PRINCIPAL_RE = /^[a-z][a-z0-9-]*:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const ACTION_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Ids that travel as NATS subject tokens and message ids: no dots, spaces or wildcards. */
export const IdSchema = z.string().regex(ID_RE, 'expected 1-128 chars of A-Za-z0-9_:- starting with a letter or digit');

/** A principal: who proposes (`agent:planner`, `svc:billing`, `human:alice`). */
export const PrincipalSchema = z.string().regex(PRINCIPAL_RE, 'expected "type:name", e.g. "agent:planner"');

/** Event names an actor accepts; the same spelling is the XState event `type`. */
export const ActionSchema = z.string().regex(ACTION_RE, 'expected an action name of A-Za-z0-9_ (max 64)');

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

const INTENT_KEYS: ReadonlySet<string> = new Set(Object.keys(IntentSchema.shape));
const OPTIONAL_TEXT = [
  ['runId', (x: string) => ID_RE.test(x)],
  ['causationId', (x: string) => x.length <= 256],
  ['correlationId', (x: string) => x.length <= 256],
  ['rationale', (x: string) => x.length <= 4000],
] as const;

/**
 * {@link IntentSchema} for the common case, without zod's machinery: returns what
 * `IntentSchema.parse` returns (the same keys in the same order; `v` may be missing) — with
 * `params` detached from the caller's objects — when `raw` plainly passes, and undefined
 * for anything else, which then goes through the schema for its issues. Every check here is
 * one the schema makes (the tests compare both on valid and invalid intents).
 * @internal
 */
export function parseIntentCommon(raw: unknown): Intent | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  for (const k in o) if (!INTENT_KEYS.has(k)) return undefined;
  const { v, id, proposer, target, action } = o;
  if (v !== undefined && v !== PROTOCOL_VERSION) return undefined;
  if (typeof id !== 'string' || !ID_RE.test(id)) return undefined;
  if (typeof proposer !== 'string' || !PRINCIPAL_RE.test(proposer)) return undefined;
  if (typeof target !== 'string' || !isAddress(target)) return undefined;
  if (typeof action !== 'string' || !ACTION_RE.test(action)) return undefined;
  const params = IntentSchema.shape.params.safeParse(o.params);
  if (!params.success) return undefined;
  const intent: Intent = {
    v: PROTOCOL_VERSION,
    id,
    proposer,
    target,
    action,
    params: JSON.parse(JSON.stringify(params.data)) as Intent['params'],
  };
  for (const [k, ok] of OPTIONAL_TEXT) {
    if (!(k in o)) continue;
    const x = o[k];
    if (typeof x !== 'string' || !ok(x)) return undefined;
    intent[k] = x;
  }
  return intent;
}

/** sha256 over the canonical JSON of the whole intent; decisions are bound to it. */
export function intentDigest(intent: Intent): string {
  return sha256Hex(canonicalJson(intent));
}
