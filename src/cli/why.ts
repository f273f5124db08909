import { FactType, type Fact, type Grant } from '../protocol/index.js';
import { c } from './format.js';

/** How an intent ended, as its facts tell it. */
export type WhyEnd = 'executed' | 'denied' | 'pending' | 'rejected' | 'failed' | 'refused' | 'unknown';

/** One fact of an intent's story, with what it says in words. */
export interface WhyStep {
  chain: string;
  seq: number;
  at: string;
  type: Fact['type'];
  origin: Fact['origin'];
  causes: number[];
  summary: string;
  /** For a decision: the grant it relied on, with its terms when the grant is known. */
  grant?: Pick<Grant, 'id' | 'subject' | 'scope'> & Partial<Grant>;
}

/** The causal chain of one intent: every fact of it, the end, and the path from the end back to the proposal. */
export interface WhyReport {
  intentId: string;
  found: boolean;
  end: WhyEnd;
  /** The chain the story is told in: the target actor's (or, for an intent rejected at intake, a runtime chain). */
  chain?: string;
  steps: WhyStep[];
  /** The seqs from the last fact back to `intent.proposed`, following `causes`. */
  path: number[];
  /** Where following `causes` from the last fact does not reach `intent.proposed`. */
  broken?: { seq: number; reason: string };
}

type DecisionData = {
  id: string;
  verdict: string;
  reasons: Array<{ code: string; message: string }>;
  grantId?: string;
  policyRule?: string;
  policies?: { version?: unknown; ids?: unknown[] };
  approvedBy?: string;
  actorState?: string;
};

function summarize(f: Fact): string {
  const d = f.data;
  switch (f.type) {
    case FactType.intentProposed: {
      const i = d.intent as { proposer: string; target: string; action: string; params: unknown; runId?: string };
      return `${i.proposer} proposes ${i.target}:${i.action} ${JSON.stringify(i.params)}${i.runId ? ` in run ${i.runId}` : ''}`;
    }
    case FactType.decision: {
      const dec = d.decision as DecisionData;
      const parts = [`${dec.verdict} (decision ${dec.id}${dec.actorState !== undefined ? `, against state ${dec.actorState}` : ''})`];
      for (const r of dec.reasons) parts.push(`${r.code}: ${r.message}`);
      if (dec.policyRule) parts.push(`policy rule ${dec.policyRule}`);
      if (dec.policies)
        parts.push(`policy set ${String(dec.policies.version)}: ${(dec.policies.ids ?? []).map(String).join(', ') || '(none)'}`);
      return parts.join('\n');
    }
    case FactType.transition:
      return `${String(d.from)} → ${String(d.to)} on ${(d.event as { type: string }).type}`;
    case FactType.intentRejected:
      return (d.issues as Array<{ path: string; message: string }>).map((i) => `${i.path || '(intent)'}: ${i.message}`).join('; ');
    case FactType.intentFailed:
    case FactType.decisionRefused:
      return JSON.stringify(d.error ?? d.reason ?? d);
    case FactType.approval:
      return d.approved === true
        ? `approved by ${String(d.by)}${typeof d.note === 'string' ? `: ${d.note}` : ''}`
        : `refused by ${String(d.by)}${typeof d.reason === 'string' ? `: ${d.reason}` : ''}`;
    case FactType.approvalRefused:
      return `approval by ${String(d.by)} refused (${String(d.refusal)}): ${String(d.message)}`;
    case FactType.approvalExpired:
      return `no quorum by ${String(d.expiresAt)}: ${Array.isArray(d.approvals) ? d.approvals.length : 0} of ${String(d.quorum)} approvals (policy ${String(d.policy)})`;
    case FactType.grantUsed:
      return `grant ${String(d.grantId)} used: ${String(d.uses)} of ${String(d.maxUses)}`;
    default:
      return JSON.stringify(d);
  }
}

function endOf(facts: readonly Fact[]): WhyEnd {
  if (facts.some((f) => f.type === FactType.transition)) return 'executed';
  if (facts.some((f) => f.type === FactType.intentRejected)) return 'rejected';
  if (facts.some((f) => f.type === FactType.intentFailed)) return 'failed';
  if (facts.some((f) => f.type === FactType.decisionRefused)) return 'refused';
  if (facts.some((f) => f.type === FactType.approvalExpired)) return 'denied';
  const last = [...facts].reverse().find((f) => f.type === FactType.decision);
  if (last) {
    const v = (last.data.decision as DecisionData).verdict;
    if (v === 'denied' || v === 'pending') return v;
  }
  return 'unknown';
}

/**
 * Builds the story of one intent from its facts (`ice why`): every fact, in order, and the
 * path that `causes` alone draws from the last fact back to the proposal. A path that stops
 * short is reported, never papered over: the journal is the evidence.
 */
export function explainIntent(intentId: string, facts: readonly Fact[], grants: readonly Grant[] = []): WhyReport {
  const sorted = [...facts].sort((a, b) => (a.actor ?? '').localeCompare(b.actor ?? '') || a.seq - b.seq);
  if (sorted.length === 0) return { intentId, found: false, end: 'unknown', steps: [], path: [] };
  const grantsById = new Map(grants.map((g) => [g.id, g]));
  const steps = sorted.map((f): WhyStep => {
    const grantId = f.type === FactType.decision ? (f.data.decision as DecisionData).grantId : undefined;
    const g = grantId !== undefined ? grantsById.get(grantId) : undefined;
    return {
      chain: f.actor ?? '',
      seq: f.seq,
      at: f.at,
      type: f.type,
      origin: f.origin,
      causes: f.causes,
      summary: summarize(f),
      ...(grantId !== undefined ? { grant: g ?? { id: grantId, subject: '?', scope: '?' } } : {}),
    };
  });
  // The story lives in the target's chain; a rejected intent may have only a runtime-chain fact.
  const chain = (sorted.find((f) => f.type === FactType.intentProposed) ?? sorted[sorted.length - 1]!).actor;
  const inChain = sorted.filter((f) => f.actor === chain);
  const bySeq = new Map(inChain.map((f) => [f.seq, f]));
  const path: number[] = [];
  let at: Fact | undefined = inChain[inChain.length - 1];
  let broken: WhyReport['broken'];
  while (at) {
    path.push(at.seq);
    if (at.type === FactType.intentProposed) break;
    if (at.causes.length === 0) {
      // A rejected intent has no proposal fact: its rejection is the whole story.
      if (at.type !== FactType.intentRejected) broken = { seq: at.seq, reason: `${at.type} #${at.seq} names no cause` };
      break;
    }
    const next = bySeq.get(Math.max(...at.causes));
    if (!next) {
      broken = { seq: at.seq, reason: `${at.type} #${at.seq} cites #${Math.max(...at.causes)}, which is not a fact of this intent` };
      break;
    }
    at = next;
  }
  return {
    intentId,
    found: true,
    end: endOf(sorted),
    ...(chain !== undefined ? { chain } : {}),
    steps,
    path,
    ...(broken ? { broken } : {}),
  };
}

const END_COLOR: Record<WhyEnd, (s: string) => string> = {
  executed: c.green,
  denied: c.red,
  pending: c.yellow,
  rejected: c.magenta,
  failed: c.red,
  refused: c.red,
  unknown: c.dim,
};

/** `ice why` for people: the facts in order, the grant behind each decision, and the causal path. */
export function formatWhy(r: WhyReport): string {
  if (!r.found) return `no facts for intent ${r.intentId}`;
  const lines = [`${c.bold(`intent ${r.intentId}`)}: ${END_COLOR[r.end](r.end)}`];
  for (const s of r.steps) {
    const [first, ...rest] = s.summary.split('\n');
    const causes = s.causes.length ? c.dim(` ← #${s.causes.join(',#')}`) : '';
    lines.push(`  #${String(s.seq).padEnd(5)} ${c.dim(s.at)}  ${s.type.padEnd(16)} ${c.dim(`[${s.origin}]`)} ${first ?? ''}${causes}`);
    for (const more of rest) lines.push(`  ${' '.repeat(6)}   ${more}`);
    if (s.grant) {
      const g = s.grant;
      const terms = [
        g.runId ? `run ${g.runId}` : '',
        g.expiresAt ? `until ${g.expiresAt}` : '',
        g.maxUses !== undefined ? `uses ${g.uses ?? 0}/${g.maxUses}` : '',
        g.revokedAt ? c.red(`revoked ${g.revokedAt}`) : '',
      ].filter(Boolean);
      lines.push(`  ${' '.repeat(6)}   grant ${g.id}: ${g.subject} → ${g.scope}${terms.length ? ` (${terms.join(', ')})` : ''}`);
    }
  }
  const chain = r.chain ?? '';
  lines.push(
    `  causes: ${r.path.map((seq) => `#${seq} ${r.steps.find((s) => s.seq === seq && s.chain === chain)?.type ?? '?'}`).join(' ← ')}`,
  );
  if (r.broken) lines.push(c.red(`  the causal chain stops: ${r.broken.reason}`));
  return lines.join('\n');
}
