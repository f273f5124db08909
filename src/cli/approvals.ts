import type { PendingApprovalView } from '../host/index.js';
import { c } from './format.js';

/**
 * `ice approvals`: one block per pending intent — what it asks, its requirement, the
 * approvals so far (who, when), how many remain and until when.
 */
export function formatPendingApprovals(ps: readonly PendingApprovalView[]): string {
  if (ps.length === 0) return c.dim('(nothing pending)');
  return ps
    .map((p) => {
      const r = p.requirement;
      const head = `${c.bold(p.intentId)}  ${p.actor}  ${p.intent.proposer} ${p.intent.action} ${JSON.stringify(p.intent.params)}`;
      const req = `  needs ${r.quorum} of ${r.approvers.join(' | ')} (policy ${r.policy}${r.reason ? `: ${r.reason}` : ''})`;
      const got =
        p.approvals.length === 0
          ? '  no approvals yet'
          : `  approved by ${p.approvals.map((a) => `${a.by} ${c.dim(`at ${a.at}${a.note ? ` "${a.note}"` : ''}`)}`).join(', ')}`;
      const left = `  ${c.yellow(`${p.remaining} more`)} before ${p.expiresAt}  ${c.dim(`pending since ${p.createdAt}`)}`;
      return [head, req, got, left].join('\n');
    })
    .join('\n');
}
