export { ActorAddressSchema, parseAddress, parseChildAddress, splitAddress, isAddress, ACTOR_KIND_RE, ACTOR_ID_RE } from './address.js';
export type { ActorAddress } from './address.js';
export { canonicalJson, sha256Hex } from './canonical.js';
export { DEFAULT_LIMITS, checkJsonShape, parseJsonBounded, jsonByteLength } from './limits.js';
export type { JsonLimits } from './limits.js';
export { assertUnicode, findNotUnicode, isWellFormed } from './unicode.js';
export { PROTOCOL_VERSION, IdSchema, PrincipalSchema, ActionSchema, ParamsSchema, IntentSchema, intentDigest } from './intent.js';
export type { Intent, IntentInput } from './intent.js';
export { ScopeSchema, SubjectPatternSchema, GrantSchema, GrantRequestSchema, GrantDelegationSchema, MAX_GRANT_TTL_MS } from './grant.js';
export type { Grant, GrantRequest, GrantDelegation } from './grant.js';
export { Verdict, ReasonSchema, DecisionSchema } from './decision.js';
export { ApprovalRequirementSchema, ApprovalEntrySchema, ApprovalRefusal } from './approval-requirement.js';
export type { ApprovalRequirement, ApprovalEntry } from './approval-requirement.js';
export type { Decision, UnsignedDecision, Reason } from './decision.js';
export { FACT_VERSION, FactType, Origin, FactSchema } from './fact.js';
export type { Fact, FactBody, FactDraft } from './fact.js';
export { ActorStatus, SnapshotRecordSchema, TimerRecordSchema } from './snapshot.js';
export type { SnapshotRecord, TimerRecord } from './snapshot.js';
export { OutcomeSchema, IssueSchema } from './outcome.js';
export type { Outcome, OutcomeStatus, Issue } from './outcome.js';
export {
  Subjects,
  addressFromIntentSubject,
  parseIntentSubject,
  principalToken,
  principalFromSubject,
  type IntentSubject,
} from './subjects.js';
export { chainFact, checkChain, factBodyText } from './chain.js';
export type { ChainCursor } from './chain.js';
