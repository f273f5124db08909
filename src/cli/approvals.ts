import { runAdminOp } from '../admin/index.js';
import type { PendingApprovalView } from '../host/index.js';
import type { InspectorOptions } from '../inspector/index.js';
import type { Runtime } from '../runtime.js';
import { c } from './format.js';

/**
 * The approve / deny buttons of the inspector a node serves, on a loopback bind only: they
 * run the admin operations of this runtime (as `ice approve|deny|approvals` and the admin
 * endpoint do), approving as `human:$USER` unless the page's "approve as" field says otherwise.
 */
export function inspectorApprovals(rt: Runtime, host: string): Pick<InspectorOptions, 'approvals'> {
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) return {};
  return {
    approvals: {
      run: (op, args) => runAdminOp(rt, op, args),
      operator: process.env.USER ? `human:${process.env.USER}` : 'human:operator',
    },
  };
}

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
