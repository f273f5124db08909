import { DEFAULT_APPROVAL } from '../authority/index.js';
import type { ApprovalRefusedError } from '../errors.js';
import type { ApprovalEntry, ApprovalRequirement, Decision, Intent, Outcome } from '../protocol/index.js';
import type { PendingRecord } from './ports.js';

/** What an approval of a pending intent is judged against: read from its pending record. */
export interface PendingTerms {
  requirement: ApprovalRequirement;
  /** The deadline, ms since the epoch. */
  expiresAt: number;
  approvals: ApprovalEntry[];
  /** Seq of the pending `decision` fact (what every approval fact cites). */
  decisionSeq: number;
  decision: Decision;
}

/** The pending record a `pending` decision leaves: its requirement, its deadline, no approvals yet. */
export function newPendingRecord(intent: Intent, decision: Decision, decisionSeq: number): PendingRecord {
  const requirement = decision.requirement ?? defaultRequirement(decision);
  return {
    intentId: intent.id,
    actor: intent.target,
    intent,
    decision,
    createdAt: decision.issuedAt,
    requirement,
    expiresAt: new Date(Date.parse(decision.issuedAt) + requirement.ttlMs).toISOString(),
    approvals: [],
    decisionSeq,
  };
}

/**
 * The terms of a pending record, filling in what a record written before quorums lacks: the
 * requirement (one approver, anyone), the deadline (`createdAt` + its ttl), the approvals
 * (none) and the pending decision's seq (`outcomeSeq`, of the stored pending outcome).
 */
export function pendingTerms(rec: PendingRecord, outcomeSeq: number | undefined): PendingTerms {
  const decision = rec.decision as Decision;
  const requirement = rec.requirement ?? decision.requirement ?? defaultRequirement(decision);
  return {
    requirement,
    expiresAt: Date.parse(rec.expiresAt ?? new Date(Date.parse(rec.createdAt) + requirement.ttlMs).toISOString()),
    approvals: rec.approvals ?? [],
    decisionSeq: rec.decisionSeq ?? outcomeSeq ?? 0,
    decision,
  };
}

function defaultRequirement(decision: Decision): ApprovalRequirement {
  return { policy: decision.policyRule ?? 'require_approval', ...DEFAULT_APPROVAL };
}

/** A pending intent as `rt.approvals.list()` shows it: the record, its progress and deadline. */
export interface PendingApprovalView {
  intentId: string;
  actor: string;
  intent: Intent;
  decision: Decision;
  createdAt: string;
  requirement: ApprovalRequirement;
  approvals: ApprovalEntry[];
  /** Approvals still needed. */
  remaining: number;
  expiresAt: string;
}

export function pendingView(rec: PendingRecord): PendingApprovalView {
  const t = pendingTerms(rec, rec.decisionSeq);
  return {
    intentId: rec.intentId,
    actor: rec.actor,
    intent: rec.intent as Intent,
    decision: t.decision,
    createdAt: rec.createdAt,
    requirement: t.requirement,
    approvals: t.approvals,
    remaining: Math.max(0, t.requirement.quorum - t.approvals.length),
    expiresAt: new Date(t.expiresAt).toISOString(),
  };
}

/** What `Host.settle` does with a pending intent. */
export type SettleHow = { approve: { by: string; note?: string } } | { deny: { by: string; reason: string } } | { expire: true };

/**
 * What settling came to: the outcome (`pending` with `approval_recorded` while short of the
 * quorum), or none (a refusal, an expiry with nothing to do); `refused` when the attempt was
 * refused (its fact is in the turn).
 */
export interface Settled {
  outcome: Outcome | undefined;
  committed: Promise<void>;
  refused?: ApprovalRefusedError;
}

/** An approval as its `approval` fact records it. */
export interface ApprovalDraft {
  by: string;
  note?: string;
  decisionId: string;
  /** Seq of the pending decision fact it cites. */
  decisionSeq: number;
  /** This approval's place in the quorum (1 = the first). */
  count: number;
  quorum: number;
}

export function approvalRefusedData(
  how: { approve: { by: string; note?: string } } | { deny: { by: string; reason: string } },
  refusal: string,
  message: string,
  by: string,
): Record<string, unknown> {
  const note = 'approve' in how ? how.approve.note : how.deny.reason;
  return { attempt: 'approve' in how ? 'approve' : 'deny', by, ...(note ? { note } : {}), refusal, message };
}
