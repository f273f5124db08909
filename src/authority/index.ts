export { Authority, verifyDecision } from './authority.js';
export type { ActorView, RunView, DecideInput, AuthorityOptions } from './authority.js';
export { GrantBook, buildGrant, delegationFact, grantExists, revocationFacts, sameTerms, spendUse } from './grant-book.js';
export type { EnsureGrantRequest, GrantDraft, GrantMiss, GrantRecorder } from './grant-book.js';
export {
  GrantStatus,
  MAX_DELEGATION_DEPTH,
  blockingAncestor,
  carve,
  chainOf,
  delegateFrom,
  descendantsOf,
  describeGrant,
  ownStatus,
  parseDelegation,
  uncarve,
  usesLeft,
} from './delegation.js';
export { globCovers, scopeCovers } from './scope-subset.js';
export { AuthorityKey } from './signer.js';
export type { AuthorityPublicKey } from './signer.js';
export { PolicyEffect, ruleApplies } from './policy.js';
export type { PolicyRule, PolicyContext } from './policy.js';
export { scopeMatches, principalMatches } from './scope.js';
export { validateIntent, zodIssues } from './validate.js';
export type { ValidatedIntent, InvalidIntent } from './validate.js';
export { AuthorityService } from './authority-service.js';
export type { StateOracle } from './authority-service.js';
export { LocalTrust } from './local-trust.js';
export { chainStatus, grantView } from './grant-view.js';
export type { GrantLine, GrantView } from './grant-view.js';
export { DEFAULT_APPROVAL, DEFAULT_APPROVAL_TTL_MS, approverMatches, judgeApproval, requirementOf } from './approval-requirement.js';
export type { ApprovalJudgement, ApprovalSpec, IsMember } from './approval-requirement.js';
