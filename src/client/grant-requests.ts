import type { GrantView } from '../authority/grant-view.js';
import { zodIssues } from '../authority/validate.js';
import { DelegationRefusedError, ErrorAction, IceError, ValidationError, type IssueDetail } from '../errors.js';
import { GrantDelegationSchema, principalToken, type Grant, type GrantDelegation } from '../protocol/index.js';
import type { Transport } from '../transport/transport.js';

/** A delegation as an agent asks for it: `by` is the agent itself, the principal the request is sent as. */
export type DelegateInput = GrantDelegation;

type AdminReply = { result?: unknown; error?: { code: string; message: string; issues?: IssueDetail[] } };

const REFUSED = /^E_VALIDATION: delegation from grant (\S+) refused/;

/** The result of an admin reply, or the typed error it carries (a refused delegation as DelegationRefusedError). */
export function adminReplyResult(reply: AdminReply): unknown {
  const err = reply.error;
  if (!err) return reply.result;
  const refused = REFUSED.exec(err.message);
  const only = err.issues?.length === 1 ? err.issues[0] : undefined;
  if (refused && only) throw new DelegationRefusedError(refused[1]!, only.path, only.code, only.message, only.expected ?? '');
  if (err.issues) throw new ValidationError(err.message.replace(/^E_VALIDATION: /, ''), err.issues);
  throw new IceError(err.code, err.message.replace(/^E_[A-Z_]+: /, ''), ErrorAction.reject);
}

/**
 * Sends a delegation as `req.by` on `ice.admin.as.<by>.grant.delegate`: the node records `by`
 * as the delegator and refuses it unless `by` holds the parent grant.
 * @throws ValidationError (checked locally first) | DelegationRefusedError | IceError (`E_NOT_FOUND`, …)
 */
export async function requestDelegation(t: Transport, req: DelegateInput, timeoutMs: number): Promise<Grant> {
  const parsed = GrantDelegationSchema.safeParse(req);
  if (!parsed.success) throw new ValidationError('invalid delegation request', zodIssues(parsed.error));
  const subject = `ice.admin.as.${principalToken(parsed.data.by)}.grant.delegate`;
  const reply = await t.request(subject, parsed.data, { timeoutMs });
  return adminReplyResult(reply.data as AdminReply) as Grant;
}

/** Asks for one grant with its chain and delegated children (`grant.show`), as `as`. */
export async function requestGrantView(t: Transport, as: string, id: string, timeoutMs: number): Promise<GrantView> {
  const reply = await t.request(`ice.admin.as.${principalToken(as)}.grant.show`, { id }, { timeoutMs });
  return adminReplyResult(reply.data as AdminReply) as GrantView;
}
